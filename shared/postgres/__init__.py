"""Postgres: connection pools, what "unavailable" looks like, and the migrations."""
