"""The outbox: what a service publishes is first an event in its own store, then relayed to
Kafka from a tracked position, so a crash never loses or invents an event.

`OutboundMessage` is an aggregate whose id derives from the CloudEvent id: recording the
same message twice fails (the caller treats that as "already there"), which is how
Idempotency-Key is honoured.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Notification, Tracking
from eventsourcing.utils import get_topic

from contracts.envelope import CloudEvent
from events import tracing
from events.follower import LogFollower
from events.metrics import OUTBOX_PENDING, OUTBOX_PUBLISHED
from events.store import EventStoreApplication

log = logging.getLogger("events.outbox")

OUTBOX_NAMESPACE = uuid.UUID("5b3f8f4e-8d0c-4a53-9a0e-6c1f2d7f0b11")


class OutboundMessage(Aggregate):
    """One CloudEvent waiting to be (or already) published."""

    TOPIC = "events.outbox:OutboundMessage"

    class Created(Aggregate.Created):
        TOPIC = "events.outbox:OutboundMessage.Created"
        topic: str
        key: str
        cloud_event: dict[str, Any]

    @event(Created)
    def __init__(self, topic: str, key: str, cloud_event: dict[str, Any]) -> None:
        self.topic = topic
        self.key = key
        self.cloud_event = cloud_event

    @staticmethod
    def create_id(topic: str, key: str, cloud_event: dict[str, Any]) -> uuid.UUID:
        return uuid.uuid5(OUTBOX_NAMESPACE, str(cloud_event["id"]))

    @classmethod
    def of(cls, topic: str, event_: CloudEvent) -> OutboundMessage:
        cloud_event = event_.model_dump(mode="json", exclude_none=True)
        if tracing.enabled() and "traceparent" not in cloud_event:
            # Stored now, with the message: the relay (maybe another process, later) publishes
            # the context of the command or event that caused it, not its own.
            cloud_event.update(tracing.trace_fields())
        return cls(topic=topic, key=event_.subject, cloud_event=cloud_event)


def message_id(cloud_event_id: str) -> uuid.UUID:
    return uuid.uuid5(OUTBOX_NAMESPACE, cloud_event_id)


CREATED_TOPIC = get_topic(OutboundMessage.Created)


class OutboxRelay(LogFollower):
    """Publishes OutboundMessage.Created notifications in log order, then records the position.

    A crash between the broker's ack and saving the position republishes those records once
    more: consumers drop them by CloudEvent id.
    """

    name = "outbox:kafka"
    topics = (CREATED_TOPIC,)

    def __init__(self, app: EventStoreApplication, broker: Any, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(app)
        self.broker = broker
        self.loop = loop
        self._pending = OUTBOX_PENDING.labels(app.name)
        self._pending.set(0)  # exposed from the start: the backlog alert reads it

    def position(self) -> int:
        return self.app.tracked(self.name) or 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def process(self, notifications: Sequence[Notification], last_id: int) -> None:
        # Followers run in a worker thread; publishing happens on the broker's event loop.
        assert self.loop is not None, "the relay needs the event loop its broker runs on"
        # Stays up while publishing fails (the runner retries the batch): what the alert sees.
        self._pending.set(len(notifications))
        asyncio.run_coroutine_threadsafe(self.publish(notifications), self.loop).result(timeout=60)
        self.app.record(tracking=Tracking(self.name, last_id))
        if len(notifications) < self.batch_size:
            self._pending.set(0)  # a short batch: nothing more was waiting

    async def publish(self, notifications: Sequence[Notification]) -> None:
        futures = []
        tracer = tracing.tracer(self.app.name)
        spans: list[tracing.Span] = []
        for notification in notifications:
            created: Any = self.app.mapper.to_domain_event(notification)
            payload = CloudEvent.model_validate(created.cloud_event).to_json_bytes()
            headers = {"content-type": "application/cloudevents+json"}
            if tracer is not None:
                span = _publish_span(tracer, created.topic, created.cloud_event)
                headers.update(tracing.trace_fields(span))  # the hop; the envelope keeps the origin
                spans.append(span)
            futures.append(
                await self.broker.publish(
                    payload,
                    created.topic,
                    key=created.key.encode(),
                    headers=headers,
                    no_confirm=True,
                )
            )
            OUTBOX_PUBLISHED.labels(self.app.name, created.topic).inc()
        try:
            await asyncio.gather(*futures)
        finally:
            for span in spans:  # acknowledged by the broker, or failed
                span.end()


def _publish_span(tracer: tracing.Tracer, topic: str, cloud_event: dict[str, Any]) -> tracing.Span:
    parent = tracing.context_of(cloud_event.get("traceparent"), cloud_event.get("tracestate"))
    return tracer.start_span(
        f"publish {topic}", context=tracing.span_context(parent), kind=tracing.SpanKind.PRODUCER,
        attributes={"messaging.system": "kafka", "messaging.destination.name": topic,
                    "cloudevents.event_id": str(cloud_event.get("id")),
                    "cloudevents.event_type": str(cloud_event.get("type"))})
