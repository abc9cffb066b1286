"""Benchmarks, one figure per command: `python -m bench ingest|memory|flush|read|pgload`.

Every figure starts its own embedded servers on loopback, bounds its run time and stops
everything it started, even when interrupted.
"""
