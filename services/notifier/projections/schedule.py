"""The notifier's read model: which preferences are enabled and when each is next due, and
which deferred deliveries wait for a retry, so the scheduler and the sender query a small
indexed table (`next_due <= now`) instead of loading every aggregate every minute.

A follower of the notification log keeps it, with its tracking position in the same
transaction as the rows. The aggregates stay the truth: a row only says where to look.
`row_change` is the fold (plain Python: an event gives one row change); the SQL is
projections/sql.py, with each database's module (sqlite.py, postgres.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification, Tracking

from events.dialect import Cursor
from events.follower import LogFollower
from events.store import EventStoreApplication, ReadModel
from services.notifier.domain.model import Delivery, Preference
from services.notifier.domain.schedule import next_due
from services.notifier.projections.postgres import PostgresScheduleSQL
from services.notifier.projections.sql import ScheduleSQL
from services.notifier.projections.sqlite import SQLiteScheduleSQL

PREFERENCE_TOPICS = (Preference.Created.TOPIC, Preference.Set.TOPIC, Preference.Covered.TOPIC,
                     Preference.Skipped.TOPIC)
DELIVERY_TOPICS = (Delivery.Deferred.TOPIC, Delivery.Sent.TOPIC, Delivery.Failed.TOPIC)
# Each database's statements, by the store URL's scheme (StoreUrl.kind).
DIALECTS: dict[str, type[ScheduleSQL]] = {"sqlite": SQLiteScheduleSQL, "postgresql": PostgresScheduleSQL}

RowChange = tuple[str, tuple[Any, ...]]  # (kind of change, its values): ScheduleSQL.changes


def epoch(at: datetime) -> int:
    return int(at.timestamp())


def row_change(e: Any, stored: Callable[[str], Any]) -> RowChange | None:
    """What one event changes; `stored(preference_id)` reads a preference's row as the batch
    left it so far (None if there is none)."""
    key = str(e.originator_id)
    if isinstance(e, Preference.Created):
        return "preference_created", (key, e.partner_id, e.client_id, e.user_id)
    if isinstance(e, Preference.Set):
        due = epoch(next_due(e.frequency, e.set_at, None)) if e.email_enabled else None
        return "preference_set", (int(e.email_enabled), e.frequency, e.set_at.isoformat(), due, key)
    if isinstance(e, Preference.Covered | Preference.Skipped):
        row = stored(key)
        if row is None or not row["enabled"]:
            return None
        upcoming = next_due(row["frequency"], datetime.fromisoformat(row["set_at"]), e.due_at)
        return "preference_covered", (e.due_at.isoformat(), epoch(upcoming), key)
    if isinstance(e, Delivery.Deferred):
        return "retry_at", (key, epoch(e.retry_at))
    if isinstance(e, Delivery.Sent | Delivery.Failed):
        return "retry_done", (key,)
    return None


@dataclass(frozen=True)
class ScheduledPreference:
    preference_id: UUID
    partner_id: str
    client_id: str
    user_id: str
    next_due: datetime | None


class ScheduleIndex(LogFollower):
    name = "projection:schedule"
    topics: Sequence[str] = PREFERENCE_TOPICS + DELIVERY_TOPICS

    def __init__(self, app: EventStoreApplication, read_model: ReadModel | None = None) -> None:
        super().__init__(app)
        self.read_model = read_model or ReadModel(app)
        self.sql = DIALECTS[self.read_model.kind]()
        self.read_model.write(lambda c: [c.execute(s) for s in self.sql.schema])
        # Told when a preference changes, so a new first digest is scheduled at once rather
        # than at the scheduler's next minute; called on the runtime's loop.
        self.on_preference: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def position(self) -> int:
        return self.read_model.tracked(self.name) or 0

    def process(self, notifications: Sequence[Notification], last_id: int) -> None:
        events = [(n.id, self.app.mapper.to_domain_event(n)) for n in notifications]
        sql = self.sql

        def apply(c: Cursor, position: int) -> None:
            # Only what another instance has not applied since this batch was read.
            for notification_id, domain_event in events:
                if notification_id > position:
                    change = row_change(domain_event, lambda key: sql.stored(c, key))
                    if change is not None:
                        sql.write(c, change)

        self.read_model.write_after(apply, Tracking(self.name, last_id))
        if self.on_preference is not None and self._loop is not None and any(
                n.topic in PREFERENCE_TOPICS for n in notifications):
            self._loop.call_soon_threadsafe(self.on_preference)

    # --- queries --------------------------------------------------------------------------------

    def due(self, now: datetime, limit: int = 5000) -> list[ScheduledPreference]:
        """Enabled preferences whose next due time is at or before `now`, earliest first."""
        return [_row(r) for r in self.read_model.query(self.sql.due, (epoch(now), limit))]

    def of_user(self, partner_id: str, user_id: str) -> list[ScheduledPreference]:
        return [_row(r) for r in self.read_model.query(self.sql.of_user, (partner_id, user_id))]

    def partners_of(self, user_id: str) -> list[str]:
        return [r["partner_id"] for r in self.read_model.query(self.sql.partners_of, (user_id,))]

    def earliest_due(self) -> datetime | None:
        rows = self.read_model.query(self.sql.earliest_due)
        value = rows[0]["due"] if rows else None
        return datetime.fromtimestamp(int(value), UTC) if value is not None else None

    def retries_due(self, now: datetime, limit: int = 100) -> list[UUID]:
        rows = self.read_model.query(self.sql.retries_due, (epoch(now), limit))
        return [UUID(r["delivery_id"]) for r in rows]


def _row(r: dict[str, Any]) -> ScheduledPreference:
    due = datetime.fromtimestamp(int(r["next_due"]), UTC) if r["next_due"] is not None else None
    return ScheduledPreference(UUID(r["preference_id"]), r["partner_id"], r["client_id"], r["user_id"], due)
