"""One reminder is one trace: from the admin's API command in the client directory, through
its outbox, the relay and the real broker, to the notifier's consumer, dispatcher and SMTP
send, and the email's outcome published back. Spans are collected in memory."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kafka import KafkaProducer
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from events import tracing
from events.outbox import message_id
from tests.conftest import Publish, unique
from tests.harness import auth, client_directory, eventually, notifier
from tests.notifier.bus import wait_for_events

pytestmark = pytest.mark.integration
# A platform event that comes with a trace of its own (the platform's).
PLATFORM_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PLATFORM_PARENT = f"00-{PLATFORM_TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.install("client_directory", exporter)
    tracing.install("notifier", exporter)
    try:
        yield exporter
    finally:
        tracing.reset()


def service(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"])


def hex_id(number: int, width: int) -> str:
    return f"{number:0{width}x}"


def ids(traceparent: str) -> list[str]:
    """The trace id and parent id of a `traceparent` (its flags vary with the SDK's version)."""
    return traceparent.split("-")[1:3]


def trace_of(exporter: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.context is not None and s.context.trace_id == trace_id]


def named(trace: list[ReadableSpan], name: str, in_service: str) -> ReadableSpan:
    found = [s for s in trace if s.name == name and service(s) == in_service]
    assert found, f"no {name!r} of {in_service} in {sorted((service(s), s.name) for s in trace)}"
    return found[0]


def parent_is(child: ReadableSpan, parent: ReadableSpan) -> bool:
    assert child.parent is not None and parent.context is not None
    return child.parent.span_id == parent.context.span_id


async def test_one_reminder_is_one_trace_across_both_services_to_the_smtp_send(
    broker, smtp, stores, producer: KafkaProducer, publish: Publish, spans: InMemorySpanExporter
) -> None:
    smtp_port, sink = smtp
    firm, admin, accountant, client_id = unique("firm"), unique("admin"), unique("acc"), unique("client")
    async with client_directory(broker.bootstrap, stores.new("sqlite")) as (directory, api), \
            notifier(broker.bootstrap, stores.new("sqlite"), smtp_port) as _:
        for user, role in ((admin, "admin"), (accountant, "accountant")):
            publish("platform.partner-members", "partner.member.added.v1", firm,
                    {"user_id": user, "email": f"{user}@firm.test", "name": user, "role": role, "locale": "en"})
        # The platform's event carries its trace (the extension): both consumers join it.
        onboarding = _publish_traced(producer, "platform.partner-clients", "client.onboarding_started.v1", firm,
                                     {"client_id": client_id, "client_name": "Acme", "invited_by": admin})
        publish("platform.partner-clients", "client.accountant_assigned.v1", firm,
                {"client_id": client_id, "user_id": accountant})

        async def visible() -> bool:
            response = await api.get(f"/v1/clients/{client_id}", headers=auth(admin, firm, "admin"))
            return response.status_code == 200 and bool(response.json()["accountants"])

        await eventually(visible)
        response = await api.post(f"/v1/clients/{client_id}/reminders", json={"tasks": ["missing_receipts"],
                                  "comment": ""}, headers=auth(admin, firm, "admin"))
        assert response.status_code == 202, response.text
        reminder_id = response.json()["reminder_id"]
        await asyncio.to_thread(sink.wait_for, lambda _: bool(sink.to(f"{accountant}@firm.test")))
        outcomes = await wait_for_events(broker.bootstrap, "portal.notification-deliveries", firm,
                                         lambda found: len(found) >= 1)

        command = await eventually(lambda: _span(spans, "command request_reminder"))
        assert command.context is not None
        trace_id = command.context.trace_id

        async def whole() -> list[ReadableSpan] | None:
            trace = trace_of(spans, trace_id)
            names = {s.name for s in trace}
            return trace if {"smtp send", "publish portal.notification-deliveries"} <= names else None

        trace = await eventually(whole)

    # The chain, each span the parent of the next, across both services and the broker.
    http = named(trace, "POST /v1/clients/{client_id}/reminders", "client_directory")
    relay = named(trace, "publish portal.notifications", "client_directory")
    consume = named(trace, "consume portal.notifications", "notifier")
    apply = named(trace, "apply notification.reminder_requested.v1", "notifier")
    dispatch = named(trace, "dispatch reminder", "notifier")
    email = named(trace, "send email reminder", "notifier")
    send = named(trace, "smtp send", "notifier")
    outcome = named(trace, "publish portal.notification-deliveries", "notifier")
    assert http.parent is None and parent_is(command, http)
    assert parent_is(relay, command) and parent_is(consume, relay) and parent_is(apply, consume)
    assert parent_is(dispatch, apply) and parent_is(email, dispatch) and parent_is(send, email)
    assert parent_is(outcome, email)
    assert {service(s) for s in trace} == {"client_directory", "notifier"}
    assert http.attributes is not None and http.attributes["http.response.status_code"] == 202
    assert send.attributes is not None and send.attributes["server.port"] == smtp_port
    # The client directory reads its own command back from the topic: a duplicate, in the trace.
    assert named(trace, "consume portal.notifications", "client_directory")

    # On the wire: the envelope keeps the context the event was created in (the command's;
    # the email's outcome, the send's), the relay's hop is a record header.
    stored: Any = directory.directory.repository.get(message_id(f"reminder-{reminder_id}"))
    assert ids(stored.cloud_event["traceparent"]) == [hex_id(trace_id, 32), hex_id(command.context.span_id, 16)]
    assert email.context is not None
    assert ids(outcomes[0]["traceparent"]) == [hex_id(trace_id, 32), hex_id(email.context.span_id, 16)]

    # The platform's event: consumed and applied in its trace, by both services.
    platform = trace_of(spans, int(PLATFORM_TRACE, 16))
    for name in ("client_directory", "notifier"):
        consumed = named(platform, "consume platform.partner-clients", name)
        assert consumed.attributes is not None and consumed.attributes["cloudevents.event_id"] == onboarding
        assert consumed.parent is not None and consumed.parent.span_id == int("00f067aa0ba902b7", 16)
        assert parent_is(named(platform, "apply client.onboarding_started.v1", name), consumed)


def _publish_traced(producer: KafkaProducer, topic: str, type_: str, partner: str, data: dict[str, Any]) -> str:
    event_id = str(uuid.uuid4())
    value = {"specversion": "1.0", "id": event_id, "source": "/platform", "type": type_,
             "time": datetime.now(UTC).isoformat(), "subject": data["client_id"], "partnerid": partner,
             "datacontenttype": "application/json", "data": data, "traceparent": PLATFORM_PARENT}
    producer.send(topic, key=data["client_id"].encode(), value=json.dumps(value).encode())
    producer.flush()
    return event_id


async def _span(exporter: InMemorySpanExporter, name: str) -> ReadableSpan | None:
    return next((s for s in exporter.get_finished_spans() if s.name == name), None)
