"""The inbox: every inbound CloudEvent id is recorded once, with what came of it.

A `ReceivedEvent` aggregate per CloudEvent id (its id derives from it) makes deduplication a
property of the event store: the same id arriving again, at any offset, changes nothing. It
also keeps, for on-call, whether the event was applied or rejected and why.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Tracking

from events.envelope import InboundEvent
from events.kafka import tracking_name
from events.metrics import EVENTS_APPLIED, EVENTS_REJECTED
from events.store import EventStoreApplication

INBOX_NAMESPACE = uuid.UUID("0f1d3c52-61a4-4a8e-b7f5-2c9e3d4a5b60")


class Rejected(Exception):
    """A valid event that is illegal in the current state; the message is the reason."""


class ReceivedEvent(Aggregate):
    TOPIC = "events.inbox:ReceivedEvent"

    class Created(Aggregate.Created):
        TOPIC = "events.inbox:ReceivedEvent.Created"
        event_id: str
        event_type: str
        partner_id: str
        subject: str
        source: str
        kafka_position: str
        outcome: str
        reason: str

    @event(Created)
    def __init__(
        self,
        event_id: str,
        event_type: str,
        partner_id: str,
        subject: str,
        source: str,
        kafka_position: str,
        outcome: str,
        reason: str,
    ) -> None:
        self.event_id = event_id
        self.event_type = event_type
        self.partner_id = partner_id
        self.subject = subject
        self.source = source
        self.kafka_position = kafka_position
        self.outcome = outcome
        self.reason = reason

    @staticmethod
    def create_id(event_id: str, **_: Any) -> uuid.UUID:
        return received_id(event_id)


def received_id(event_id: str) -> uuid.UUID:
    return uuid.uuid5(INBOX_NAMESPACE, event_id)


RECEIVED_TOPIC = ReceivedEvent.Created.TOPIC


def received_event(inbound: InboundEvent, kafka_position: str, outcome: str, reason: str,
                   inbox_id: uuid.UUID | None = None) -> Any:
    """The event `ReceivedEvent(...)` would record, built directly: constructing the aggregate
    (signature inspection, mutate) cost a sixth of the consumer's time, and nobody reads
    the aggregate in the batch that creates it."""
    created: Any = ReceivedEvent.Created  # a dataclass made by eventsourcing's metaclass: mypy sees no fields
    return created(
        originator_id=inbox_id or received_id(inbound.id), originator_version=ReceivedEvent.INITIAL_VERSION,
        timestamp=ReceivedEvent.Created.create_timestamp(), originator_topic=ReceivedEvent.TOPIC,
        event_id=inbound.id, event_type=inbound.type, partner_id=inbound.partner_id,
        subject=inbound.envelope.subject, source=inbound.envelope.source, kafka_position=kafka_position,
        outcome=outcome, reason=reason,
    )


class UnitOfWork:
    """The aggregates one batch touches: loaded once, saved together."""

    def __init__(self, app: EventStoreApplication) -> None:
        self.app = app
        self._loaded: dict[uuid.UUID, Any] = {}
        self._missing: set[uuid.UUID] = set()
        self._events: list[Any] = []

    def prefetch(self, ids: Iterable[uuid.UUID]) -> None:
        """Load these aggregates (those not known yet) in one query: a batch's reads become
        one round trip instead of one transaction per aggregate."""
        wanted = [i for i in dict.fromkeys(ids) if i not in self._loaded and i not in self._missing]
        if not wanted:
            return
        found = self.app.load(wanted)
        self._loaded.update(found)
        self._missing.update(i for i in wanted if i not in found)

    def get(self, aggregate_id: uuid.UUID) -> Any | None:
        if aggregate_id in self._loaded:
            return self._loaded[aggregate_id]
        if aggregate_id in self._missing:
            return None
        try:
            aggregate: Any = self.app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            self._missing.add(aggregate_id)
            return None
        self._loaded[aggregate_id] = aggregate
        return aggregate

    def add(self, aggregate: Any) -> Any:
        self._loaded[aggregate.id] = aggregate
        self._missing.discard(aggregate.id)
        return aggregate

    def add_event(self, created: Any) -> None:
        """A new aggregate's created event, saved with the rest (`get` finds it, not as an aggregate)."""
        self._loaded[created.originator_id] = created
        self._missing.discard(created.originator_id)
        self._events.append(created)

    def changed(self) -> list[Any]:
        return [a for a in self._loaded.values() if getattr(a, "_pending_events", None)] + self._events


Handler = Callable[[InboundEvent, UnitOfWork], None]
# The aggregates the handler will read for an event, so a batch loads them in one query.
# Without one given, the application's `inbox_keys` method is used if it has one.
Keys = Callable[[InboundEvent], Iterable[uuid.UUID]]


class InboxSink:
    """Applies a partition's batch through the service's handler, atomically with its position."""

    def __init__(self, service: str, app: EventStoreApplication, handle: Handler, keys: Keys | None = None) -> None:
        self.service = service
        self.app = app
        self.handle = handle
        self.keys: Keys | None = keys if keys is not None else getattr(app, "inbox_keys", None)

    def _unit_of_work(self, events: Sequence[InboundEvent]) -> tuple[UnitOfWork, list[uuid.UUID]]:
        """The batch's unit of work, loaded, and the inbox id of each event (uuid5 is not free)."""
        uow = UnitOfWork(self.app)
        received = [received_id(e.id) for e in events]
        ids = list(received)
        if self.keys is not None:
            for inbound in events:
                ids.extend(self.keys(inbound))
        uow.prefetch(ids)
        return uow, received

    def position(self, topic: str, partition: int) -> int | None:
        return self.app.tracked(tracking_name(topic, partition))

    def apply(self, topic: str, partition: int, events: Sequence[InboundEvent], last_offset: int) -> int:
        uow, received = self._unit_of_work(events)
        duplicates = 0
        for inbound, inbox_id in zip(events, received, strict=True):
            if uow.get(inbox_id) is not None:
                duplicates += 1
                continue
            self._apply_one(inbound, uow, topic, partition, inbox_id)
        self.app.record(*uow.changed(), tracking=Tracking(tracking_name(topic, partition), last_offset))
        return duplicates

    def _apply_one(self, inbound: InboundEvent, uow: UnitOfWork, topic: str, partition: int,
                   inbox_id: uuid.UUID) -> None:
        outcome, reason = "applied", ""
        try:
            self.handle(inbound, uow)
        except Rejected as rejection:
            outcome, reason = "rejected", str(rejection)
        uow.add_event(received_event(inbound, f"{topic}:{partition}:{inbound.record.offset}", outcome, reason,
                                     inbox_id))
        counter = EVENTS_APPLIED if outcome == "applied" else EVENTS_REJECTED
        counter.labels(self.service, topic, inbound.type).inc()

    def apply_replay(self, events: Sequence[InboundEvent]) -> int:
        """Apply events again without moving the live consumer's position (on-call replays).
        Returns how many were duplicates: those change nothing."""
        uow, received = self._unit_of_work(events)
        duplicates = 0
        for inbound, inbox_id in zip(events, received, strict=True):
            if uow.get(inbox_id) is not None:
                duplicates += 1
                continue
            self._apply_one(inbound, uow, inbound.record.topic, inbound.record.partition, inbox_id)
        self.app.record(*uow.changed())
        return duplicates
