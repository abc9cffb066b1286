"""The contract every service keeps: ids, tokens, times, liveness, wire bodies, and the Redis
storage layout with the typed calls of its Lua scripts."""
