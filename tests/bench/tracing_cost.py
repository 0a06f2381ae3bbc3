"""8, tracing off: what the consumer's per-fetch path costs with tracing off, beside the same
work without any tracing code (events/tracing.py promises nothing measurable). And, for
scale, the same with tracing on into memory.

The work per event is what the consumer does before the store: parse and validate the
record (events.envelope.parse_record), then the service's handler (here a small fold, so
the tracing code's share is not hidden behind a database). Fetches of 500 records, as the
consumer gets them; the variants alternate, best of several rounds each.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from events import tracing
from events.envelope import InboundEvent, InboundRecord, InvalidRecord, parse_record
from events.kafka import _consume_spans
from tests.bench.common import Report, Row

SERVICE = "bench-tracing"
FETCH = 500
ROUNDS = 9


def records(count: int) -> list[InboundRecord]:
    made = []
    for n in range(count):
        value = {"specversion": "1.0", "id": f"e-{n}", "source": "/platform", "type": "client.renamed.v1",
                 "time": "2026-12-01T10:00:00+00:00", "subject": f"c-{n % 97}", "partnerid": "firm",
                 "data": {"client_id": f"c-{n % 97}", "client_name": f"Client {n}"}}
        made.append(InboundRecord("platform.partner-clients", n % 3, n, f"c-{n % 97}".encode(),
                                  json.dumps(value).encode()))
    return made


def _fold(names: dict[str, str]) -> Callable[[Any, Any], None]:
    def handle(inbound: InboundEvent, uow: Any) -> None:
        data: Any = inbound.data
        names[inbound.envelope.subject] = data.client_name
    return handle


def without_tracing(fetches: Sequence[Sequence[InboundRecord]]) -> None:
    """The consumer's work as it was before tracing: parse, then the handler."""
    handle = _fold({})
    for fetch in fetches:
        parsed = [parse_record(r) for r in fetch]
        for inbound in parsed:
            handle(inbound, None)


def as_the_consumer_does(fetches: Sequence[Sequence[InboundRecord]]) -> None:
    """The same with the tracing calls the consumer and bootstrap make (off: a tracer
    look-up per fetch, the handler not wrapped; on: spans per event)."""
    handle = tracing.traced_handler(SERVICE, _fold({}))
    for fetch in fetches:
        parsed: list[InboundEvent | InvalidRecord] = [parse_record(r) for r in fetch]
        tracer = tracing.tracer(SERVICE)
        spans = _consume_spans(tracer, parsed) if tracer is not None else ()
        for inbound in parsed:
            handle(inbound, None)
        for span in spans:
            span.end()


def _paired(fetches: Sequence[Sequence[InboundRecord]]) -> tuple[float, float]:
    """Both variants fetch by fetch, each first in turn, in this thread's CPU time: other
    work on the machine (preemption) falls on neither. Returns (CPU seconds without tracing
    code, CPU seconds with it, off)."""
    plain = off = 0.0
    for n, fetch in enumerate(fetches):
        for work in ((without_tracing, as_the_consumer_does) if n % 2 else (as_the_consumer_does, without_tracing)):
            started = time.thread_time()
            work([fetch])
            spent = time.thread_time() - started
            if work is without_tracing:
                plain += spent
            else:
                off += spent
    return plain, off


def bench_tracing(report: Report, events: int) -> None:
    every = records(events)
    fetches = [every[i:i + FETCH] for i in range(0, len(every), FETCH)]
    tracing.reset()
    rounds = [_paired(fetches) for _ in range(ROUNDS)]
    ratios = sorted(off / plain for plain, off in rounds)
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    tracing.install(SERVICE, InMemorySpanExporter())
    on: list[float] = []
    try:
        for _ in range(max(2, ROUNDS // 2)):
            started = time.perf_counter()
            as_the_consumer_does(fetches)
            on.append(time.perf_counter() - started)
    finally:
        tracing.reset()
    plain = min(p for p, _ in rounds)
    report.add(Row("8 tracing", "parse + apply, no tracing code", events / plain, "events/s"))
    ratio = ratios[len(ratios) // 2]
    report.add(Row("8 tracing", "tracing off / no tracing code (CPU time, median of rounds)", ratio, "x", "", None,
                   "<= 1.05", ratio <= 1.05,
                   note=f"the per-fetch path as the consumer runs it, OTEL_* unset, in CPU time; "
                   f"rounds {ratios[0]:.3f}-{ratios[-1]:.3f}"))
    report.add(Row("8 tracing", "tracing on, in memory / no tracing code (wall time)", min(on) / plain, "x",
                   note="a consumer and an apply span per event; for scale, no target"))
