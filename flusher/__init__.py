"""The flusher: drains dirty workers from Redis into Postgres and keeps the registry in step."""
