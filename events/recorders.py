"""The event store's recorders, with the inbox table beside the stored events.

Every inbound CloudEvent id is recorded once, as a row of the inbox table, in the same
transaction as the events it caused and the Kafka position (eventsourcing passes the rows
through `insert_events(..., inbox=...)` to `_insert_events`, which runs inside that
transaction on both stores). The primary key on the event id is what makes a second arrival
of the same event, at any offset or from another instance, change nothing.

A row rather than an aggregate per event: an aggregate cost a stored event (mapping,
encoding, an index entry in the notification log) for each inbound event, more than the
effects of most events themselves, and on-call's "what came in about this client" was a scan
of the whole log; the table answers it from an index.

The recorders also take `trackings=[...]`: more partitions' positions in the same transaction
(a fetch from several partitions is applied as one unit of work).

This module holds what both stores share; each store's recorder, with its own SQL, is in
events/sqlite.py and events/postgres.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

COLUMNS = ("event_id", "event_type", "partner_id", "subject", "source", "kafka_position", "outcome", "reason",
           "received_at")
CHUNK = 500  # ids per IN (...) / = ANY(...) lookup


@dataclass(frozen=True)
class InboxEntry:
    """One inbound event as received: where it came from and what came of it."""

    event_id: str
    event_type: str
    partner_id: str
    subject: str
    source: str
    kafka_position: str  # topic:partition:offset, or where else it came from ("api", ...)
    outcome: str  # applied | rejected
    reason: str = ""
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def row(self) -> tuple[str, ...]:
        return (stored_text(self.event_id), stored_text(self.event_type), stored_text(self.partner_id),
                stored_text(self.subject), stored_text(self.source), self.kafka_position, self.outcome,
                stored_text(self.reason), self.received_at.isoformat(timespec="microseconds"))

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.received_at.isoformat(timespec="seconds"), "id": self.event_id, "type": self.event_type,
                "partner": self.partner_id, "subject": self.subject, "position": self.kafka_position,
                "outcome": self.outcome, "reason": self.reason}

    @classmethod
    def from_row(cls, row: Any) -> InboxEntry:
        values = {name: row[name] for name in COLUMNS}
        values["received_at"] = datetime.fromisoformat(values["received_at"])
        return cls(**values)


def stored_text(text: str) -> str:
    """PostgreSQL text cannot hold NUL, and an event carrying one (rejected for it) must still
    be recorded, or its batch would fail for good: NUL is kept as U+FFFD, on both stores alike."""
    return text.replace("\x00", "\ufffd")


def inbox_table_name(events_table_name: str) -> str:
    """`stored_events` → `stored_inbox`; PostgreSQL's `clientdirectory_events` → `clientdirectory_inbox`."""
    return events_table_name.removesuffix("_events") + "_inbox"


def stored_ids(event_ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(stored_text(event_id) for event_id in event_ids))


def chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


def inbox_filter(partner_id: str | None, subject: str | None, mark: str) -> tuple[str, list[str]]:
    """The WHERE clause (with the store's parameter `mark`) and parameters of an inbox listing."""
    terms, params = [], []
    if partner_id is not None:
        terms.append(f"partner_id = {mark}")
        params.append(stored_text(partner_id))
    if subject is not None:
        terms.append(f"subject = {mark}")
        params.append(stored_text(subject))
    return (" WHERE " + " AND ".join(terms) if terms else ""), params


class InboxRecorder(Protocol):
    """What both stores' recorders answer about the inbox table (and positions, read at once)."""

    inbox_table_name: str

    def inbox_received(self, event_ids: Sequence[str]) -> set[str]: ...
    def max_tracking_ids(self, names: Sequence[str]) -> dict[str, int | None]: ...
    def inbox_entry(self, event_id: str) -> InboxEntry | None: ...
    def inbox_entries(self, *, partner_id: str | None, subject: str | None, limit: int) -> list[InboxEntry]: ...
    def inbox_count(self) -> int: ...
    def inbox_is_empty(self) -> bool: ...
