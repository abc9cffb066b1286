"""The ingest app with its tracing hooks taken out: no tracing started, no tracer looked up, so
nothing of shared/tracing.py runs at all. `bench ingest --tracing-off-reference` compares the
real app, tracing off, against it."""

from __future__ import annotations

from typing import Any

import ingest.app as ingest_app


def _never_started(*args: Any, **kwargs: Any) -> bool:
    return False


def _no_tracer() -> None:
    return None


ingest_app.start_tracing = _never_started
ingest_app.active_tracer = _no_tracer
app = ingest_app.create_app()
