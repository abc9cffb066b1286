"""Ingest's spans, installed only while tracing is on: with it off a beat runs exactly the code
it would run without tracing (measured in docs/benchmarks.md), with it on an unsampled beat
costs one `random()`.

A sampled beat gets a server span for its request; inside it, a span for its wait in the group
commit; and the Redis write that carried it is a client span under the wait of the first
sampled beat of the batch, linked to the waits of the others (one write serves many requests,
so it can have only one parent).
"""

from __future__ import annotations

import asyncio
from random import random
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.group_commit import GroupCommitter, Pending
from shared.contract.record import Beat, BeatResult

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer


class SampledRoute:
    """`route` with a server span for a `ratio` share of its requests, chosen at random."""

    def __init__(self, route: ASGIApp, template: str, ratio: float, tracer: Tracer) -> None:
        from opentelemetry.trace import SpanKind

        self._route = route
        self._ratio = ratio
        self._tracer = tracer
        self._name = f"POST {template}"
        self._server = SpanKind.SERVER
        self._attributes = {"http.request.method": "POST", "http.route": template}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if random() >= self._ratio:  # never at 0, always at 1 (random() is below 1)
            return await self._route(scope, receive, send)
        with self._tracer.start_as_current_span(
            self._name, kind=self._server, attributes=self._attributes
        ) as span:

            async def send_status(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", int(message["status"]))
                await send(message)

            await self._route(scope, receive, send_status)


class TracedGroupCommitter(GroupCommitter):
    """The group committer, with spans for the beats whose request is sampled."""

    def __init__(self, *args: Any, tracer: Tracer, **kwargs: Any) -> None:
        from opentelemetry import trace

        super().__init__(*args, **kwargs)
        self._tracer = tracer
        self._trace = trace
        self._waits: dict[asyncio.Future[BeatResult], Span] = {}
        self._not_written = trace.Status(trace.StatusCode.ERROR, "the beat was not written")

    def submit(self, beat: Beat) -> asyncio.Future[BeatResult]:
        future = super().submit(beat)
        if self._trace.get_current_span().is_recording():  # a sampled request's beat
            wait = self._tracer.start_span("group commit")
            self._waits[future] = wait
            future.add_done_callback(self._answered)
        return future

    def _answered(self, future: asyncio.Future[BeatResult]) -> None:
        wait = self._waits.pop(future, None)
        if wait is not None:
            if future.cancelled() or future.exception() is not None:
                wait.set_status(self._not_written)
            wait.end()

    async def _write(self, batch: list[Pending]) -> None:
        waits = [self._waits[f] for _, f in batch if f in self._waits] if self._waits else []
        if not waits:
            return await super()._write(batch)
        trace = self._trace
        with self._tracer.start_as_current_span(
            "redis EVALSHA record_heartbeats",
            context=trace.set_span_in_context(waits[0]),
            kind=trace.SpanKind.CLIENT,
            links=[trace.Link(w.get_span_context()) for w in waits[1:]],
            attributes={
                "db.system.name": "redis",
                "db.operation.name": "EVALSHA",
                "hb.batch.beats": len(batch),
                "hb.batch.sampled": len(waits),
            },
        ):
            await super()._write(batch)
