"""Tracing with OpenTelemetry: one trace from the platform's event (or the API command) to the
email, across both services and Kafka (docs/CONTRACT.md, "Tracing").

The context travels in the CloudEvents distributed-tracing extension: `traceparent` and
`tracestate` attributes of the envelope, the context in which the event was created (the
command, or the inbound event that caused it), never rewritten on the way. The outbox relay
adds a `traceparent` record header of its own publish span, the transport hop; a consumer
takes its parent from that header when there is one, else from the envelope.

Configured by the standard variables (`TracingSettings`), off unless set. Off means no
tracer at all for the service: every call site asks `tracer(service)` once per fetch,
batch or command, gets None and does nothing more, so an untraced service pays a dict
look-up, not a span per event. Several services may run in one process (the tests): each
has its own provider, so each span names its service.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Tracer, format_trace_id
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import Field, field_validator

from events.config import EnvSettings

__all__ = [
    "Span",
    "SpanKind",
    "Tracer",
    "TracingSettings",
    "active",
    "configure",
    "context_of",
    "current_trace_id",
    "enabled",
    "end_server_span",
    "install",
    "parent_of",
    "reset",
    "server_span",
    "span_context",
    "trace_fields",
    "traced_handler",
    "tracer",
]

log = logging.getLogger("events.tracing")
Exporter = Literal["none", "otlp", "console"]
_PROPAGATOR = TraceContextTextMapPropagator()
# The tracer of each service that traces; a service absent here does not.
_tracers: dict[str, Tracer] = {}
_providers: list[Any] = []


class TracingSettings(EnvSettings):
    """The OpenTelemetry variables a service reads (the SDK's own names and meanings)."""

    exporter: Exporter | None = Field(default=None, validation_alias="OTEL_TRACES_EXPORTER")
    endpoint: str | None = Field(default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    service_name: str | None = Field(default=None, validation_alias="OTEL_SERVICE_NAME")

    @field_validator("exporter", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("is not an http(s) URL (OTLP over http/protobuf)")
        return value.rstrip("/")

    @property
    def kind(self) -> Exporter:
        """What exports spans: as the SDK reads it, an endpoint alone means OTLP."""
        if self.exporter is not None:
            return self.exporter
        return "otlp" if self.endpoint else "none"


def configure(service: str, settings: TracingSettings) -> bool:
    """Start tracing `service` as the settings say; True if it traces. Off leaves it as it
    was (a test may have installed an in-memory exporter for it)."""
    if settings.kind == "none" or service in _tracers:
        return service in _tracers
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    if settings.kind == "console":
        # One span a line as it ends: what on-call reads from a pod's output.
        install(service, ConsoleSpanExporter(out=sys.stdout, formatter=_one_line), settings.service_name, batch=False)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # The SDK appends nothing to an endpoint given in code: the traces path is ours to add.
        endpoint = f"{settings.endpoint or 'http://localhost:4318'}/v1/traces"
        install(service, OTLPSpanExporter(endpoint=endpoint), settings.service_name, batch=True)
    log.info("tracing %s with the %s exporter", service, settings.kind)
    return True


def install(service: str, exporter: Any, service_name: str | None = None, *, batch: bool = False) -> Tracer:
    """Trace `service` into `exporter` (a SpanExporter): what `configure` and the tests use."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name or service}))
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    _providers.append(provider)
    _tracers[service] = provider.get_tracer("partner-portal")
    return _tracers[service]


def reset() -> None:
    """Stop tracing every service, flushing what was started (tests)."""
    for provider in _providers:
        provider.shutdown()
    _providers.clear()
    _tracers.clear()


def tracer(service: str) -> Tracer | None:
    """The service's tracer, or None when it does not trace: ask once per unit of work."""
    return _tracers.get(service)


def enabled() -> bool:
    """Whether any service in this process traces."""
    return bool(_tracers)


# --- the context on the wire ------------------------------------------------------------------


def context_of(traceparent: Any, tracestate: Any = None) -> Context | None:
    """The remote context a `traceparent` (and `tracestate`) names; None if absent or invalid
    (an invalid one is ignored, as W3C Trace Context says: the event is still processed)."""
    if not isinstance(traceparent, str):
        return None
    carrier = {"traceparent": traceparent}
    if isinstance(tracestate, str) and tracestate:
        carrier["tracestate"] = tracestate
    found = _PROPAGATOR.extract(carrier)
    return found if trace.get_current_span(found).get_span_context().is_valid else None


def parent_of(traceparent: Any, tracestate: Any, headers: Iterable[tuple[str, bytes]] = ()) -> Context | None:
    """A consumer's parent: the relay's `traceparent` header (the hop that delivered the
    record) when there is one, else the envelope's extension (where the event was created)."""
    for name, value in headers:
        if name == "traceparent":
            found = context_of(value.decode("ascii", "replace"))
            if found is not None:
                return found
    return context_of(traceparent, tracestate)


def trace_fields(span: Span | None = None) -> dict[str, str]:
    """`traceparent` (and `tracestate`) of `span`, or of the current span: what an event
    created now carries. Empty when there is no valid span."""
    ctx = trace.set_span_in_context(span) if span is not None else None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=ctx)
    return carrier


def span_context(parent: Context | None) -> Context:
    """A context to start a child of `parent` in (the empty context: a new trace)."""
    return parent if parent is not None else Context()


@contextmanager
def active(span: Span) -> Iterator[Span]:
    """Make `span` current without ending it on exit (its owner ends it)."""
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield span
    finally:
        otel_context.detach(token)


def traced_handler(service: str, handle: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """`handle(inbound, uow)` in an "apply" span, child of the event's consumer span; the
    handler itself when the service does not trace (no wrapper on the per-event path)."""
    tracer_ = tracer(service)
    if tracer_ is None:
        return handle

    def handling(inbound: Any, uow: Any) -> None:
        parent = trace.set_span_in_context(inbound.span) if inbound.span is not None else None
        with tracer_.start_as_current_span(f"apply {inbound.type}", context=parent,
                                           attributes={"cloudevents.event_id": inbound.id}):
            handle(inbound, uow)

    return handling


def server_span(tracer_: Tracer, scope: Mapping[str, Any]) -> Span:
    """An HTTP request's span, child of the caller's `traceparent` header if it sent one."""
    headers = ((k.decode("latin-1"), v) for k, v in scope.get("headers", ()))
    parent = parent_of(None, None, ((k, v) for k, v in headers if k == "traceparent"))
    return tracer_.start_span(f"HTTP {scope['method']}", context=span_context(parent), kind=SpanKind.SERVER,
                              attributes={"http.request.method": scope["method"]})


def end_server_span(span: Span, method: str, route: str, status: int) -> None:
    # Named by the route template (known once routed), as the metrics are: bounded names.
    span.update_name(f"{method} {route}")
    span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(trace.StatusCode.ERROR)
    span.end()


def current_trace_id() -> str | None:
    """The current span's trace id as 32 hex digits (log lines carry it), or None."""
    if not _tracers:
        return None
    span_context_ = trace.get_current_span().get_span_context()
    return format_trace_id(span_context_.trace_id) if span_context_.is_valid else None


def _one_line(span: Any) -> str:
    """A finished span as one line of JSON (the console exporter's default is a page each)."""
    import json

    ctx, parent = span.get_span_context(), span.parent
    return json.dumps({
        "name": span.name,
        "service": span.resource.attributes.get("service.name"),
        "trace_id": format_trace_id(ctx.trace_id),
        "span_id": f"{ctx.span_id:016x}",
        "parent_id": f"{parent.span_id:016x}" if parent is not None else None,
        "kind": span.kind.name,
        "duration_ms": round(((span.end_time or 0) - (span.start_time or 0)) / 1e6, 3),
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
    }, default=str) + "\n"
