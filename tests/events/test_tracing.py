"""events.tracing: the OTEL_* settings, the context read from and written into envelopes, the
consumer's spans, log lines carrying trace_id, and nothing at all when tracing is off."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from contracts.envelope import make_event
from events import tracing
from events.config import ConfigError
from events.envelope import InboundRecord, parse_record
from events.kafka import _consume_spans
from events.logs import JsonFormatter
from events.outbox import OutboundMessage
from services.client_directory.config import Settings as DirectorySettings
from services.notifier.config import Settings as NotifierSettings

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
HOP = "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.install("svc", exporter)
    try:
        yield exporter
    finally:
        tracing.reset()


def record(extra: dict[str, Any] | None = None, headers: tuple[tuple[str, bytes], ...] = ()) -> InboundRecord:
    value = {"specversion": "1.0", "id": "e-1", "source": "/platform", "type": "client.renamed.v1",
             "time": "2026-12-01T10:00:00+00:00", "subject": "c-1", "partnerid": "firm",
             "data": {"client_id": "c-1", "client_name": "Acme"}, **(extra or {})}
    return InboundRecord("platform.partner-clients", 0, 7, b"c-1", json.dumps(value).encode(), headers)


def test_off_unless_set_and_every_variable_is_listed() -> None:
    assert tracing.TracingSettings.from_env({}).kind == "none"
    assert tracing.TracingSettings.from_env({"OTEL_TRACES_EXPORTER": "none"}).kind == "none"
    assert tracing.TracingSettings.from_env({"OTEL_TRACES_EXPORTER": "Console"}).kind == "console"
    # As the SDK reads them: an endpoint alone means OTLP.
    assert tracing.TracingSettings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}).kind == "otlp"
    for settings in (DirectorySettings, NotifierSettings):
        assert {"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME"} <= set(
            settings.variables())


def test_a_bad_value_names_its_variable() -> None:
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER='jaeger'"):
        tracing.TracingSettings.from_env({"OTEL_TRACES_EXPORTER": "jaeger"})
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_ENDPOINT"):
        tracing.TracingSettings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"})


def test_configure_does_nothing_when_off() -> None:
    assert not tracing.configure("svc", tracing.TracingSettings())
    assert tracing.tracer("svc") is None and not tracing.enabled()
    handle = print
    assert tracing.traced_handler("svc", handle) is handle  # no wrapper on the per-event path


def test_the_console_exporter_prints_a_line_per_span(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        assert tracing.configure("svc", tracing.TracingSettings(exporter="console", service_name="cd-eu"))
        tracer = tracing.tracer("svc")
        assert tracer is not None
        with tracer.start_as_current_span("outer"), tracer.start_as_current_span("inner"):
            pass
    finally:
        tracing.reset()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["name"], line["service"]) for line in lines] == [("inner", "cd-eu"), ("outer", "cd-eu")]
    assert lines[0]["parent_id"] == lines[1]["span_id"] and lines[1]["parent_id"] is None


def test_the_envelope_carries_the_extension_and_an_invalid_one_is_ignored() -> None:
    inbound = parse_record(record({"traceparent": PARENT, "tracestate": "vendor=1"}))
    assert inbound.envelope.traceparent == PARENT and inbound.envelope.tracestate == "vendor=1"
    # Not a dead letter: the event is processed, in a trace of its own.
    assert parse_record(record({"traceparent": "garbage"})).envelope.traceparent == "garbage"
    assert tracing.context_of("garbage") is None and tracing.context_of(None) is None
    assert tracing.context_of(PARENT) is not None


def test_a_consumer_span_is_a_child_of_the_relay_hop_else_of_the_envelope(spans: InMemorySpanExporter) -> None:
    tracer = tracing.tracer("svc")
    assert tracer is not None
    from_envelope = parse_record(record({"traceparent": PARENT}))
    from_hop = parse_record(record({"traceparent": PARENT}, headers=(("traceparent", HOP.encode()),)))
    untraced = parse_record(record())
    for span in _consume_spans(tracer, [from_envelope, from_hop, untraced]):
        span.end()
    finished = {s.attributes["cloudevents.event_id"] if s.attributes else "": s for s in spans.get_finished_spans()}
    assert len(spans.get_finished_spans()) == 3 and len(finished) == 1  # the same event id thrice
    first, second, third = spans.get_finished_spans()
    assert first.parent is not None and f"{first.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert second.parent is not None and f"{second.parent.span_id:016x}" == "b7ad6b7169203331"
    assert third.parent is None  # a new trace
    assert first.name == "consume platform.partner-clients" and from_envelope.span is not None


def test_apply_is_a_child_of_consume_and_what_is_published_meanwhile_carries_it(
    spans: InMemorySpanExporter
) -> None:
    tracer = tracing.tracer("svc")
    assert tracer is not None
    inbound = parse_record(record({"traceparent": PARENT}))
    published: list[OutboundMessage] = []

    def handle(event: Any, uow: Any) -> None:
        published.append(OutboundMessage.of("portal.notifications", make_event(
            id="out-1", source="/tests", type="t.v1", subject="c-1", partnerid="firm", data={},
            time=datetime.now(UTC))))

    (consume,) = _consume_spans(tracer, [inbound])
    tracing.traced_handler("svc", handle)(inbound, None)
    consume.end()
    apply, consumed = spans.get_finished_spans()
    assert apply.name == "apply client.renamed.v1" and apply.parent is not None
    assert consumed.context is not None and apply.parent.span_id == consumed.context.span_id
    assert apply.context is not None
    stamped = published[0].cloud_event["traceparent"]
    assert stamped.split("-")[1:3] == [f"{apply.context.trace_id:032x}", f"{apply.context.span_id:016x}"]


def test_log_lines_carry_the_trace_id_while_a_span_is_current(spans: InMemorySpanExporter) -> None:
    formatter = JsonFormatter("svc")

    def line() -> dict[str, Any]:
        entry: dict[str, Any] = json.loads(formatter.format(logging.makeLogRecord({"msg": "hello"})))
        return entry

    assert "trace_id" not in line()
    tracer = tracing.tracer("svc")
    assert tracer is not None
    with tracer.start_as_current_span("work") as span:
        assert line()["trace_id"] == f"{span.get_span_context().trace_id:032x}"


def test_nothing_is_stamped_when_off() -> None:
    message = OutboundMessage.of("portal.notifications", make_event(
        id="out-2", source="/tests", type="t.v1", subject="c-1", partnerid="firm", data={}, time=datetime.now(UTC)))
    assert "traceparent" not in message.cloud_event
