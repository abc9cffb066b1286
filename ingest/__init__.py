"""The write path: heartbeats in, Redis hashes out. Nothing here talks to Postgres."""
