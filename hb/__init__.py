"""Tooling around the services: the `hb` command, `hb dev`, embedded servers, the demo seed and
the simulator. It may import the services; nothing in them imports it."""
