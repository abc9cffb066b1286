"""The ingest app with tracing on, its spans dropped as they end (no collector to send them to):
what tracing costs at `HB_TRACE_SAMPLE_RATIO`, for `bench ingest --tracing-on-ratio`."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from shared.settings import Settings
from shared.tracing import start_tracing


class Dropped(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


# Before the app's lifespan runs: it then finds a tracer and installs its beat hooks.
start_tracing(Settings(), "hb-ingest-bench", exporter=Dropped())

from ingest.app import app  # noqa: E402

__all__ = ["app"]
