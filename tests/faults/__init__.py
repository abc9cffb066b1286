"""Fault scenarios: the services as real processes on their own Redis and Postgres, under load."""
