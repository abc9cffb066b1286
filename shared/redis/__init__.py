"""Talking to Redis: connecting (one server or a cluster), the pipelined hot-path connection,
RESP packing, running Lua scripts, TCP keepalive."""
