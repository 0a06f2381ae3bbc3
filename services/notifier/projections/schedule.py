"""The notifier's read model: which preferences are enabled and when each is next due, and
which deferred deliveries wait for a retry, so the scheduler and the sender query a small
indexed table (`next_due <= now`) instead of loading every aggregate every minute.

A follower of the notification log keeps it, with its tracking position in the same
transaction as the rows. The aggregates stay the truth: a row only says where to look.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification, Tracking

from events.follower import LogFollower
from events.store import Cursor, EventStoreApplication, ReadModel
from services.notifier.domain.model import Delivery, Preference
from services.notifier.domain.schedule import next_due

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS nt_digest_schedule (
        preference_id TEXT PRIMARY KEY, partner_id TEXT NOT NULL, client_id TEXT NOT NULL,
        user_id TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 0,
        frequency TEXT NOT NULL DEFAULT 'weekly', set_at TEXT, last_covered TEXT, next_due BIGINT)""",
    "CREATE INDEX IF NOT EXISTS nt_digest_schedule_due ON nt_digest_schedule (next_due)",
    "CREATE INDEX IF NOT EXISTS nt_digest_schedule_user ON nt_digest_schedule (partner_id, user_id)",
    """CREATE TABLE IF NOT EXISTS nt_delivery_retries (
        delivery_id TEXT PRIMARY KEY, retry_at BIGINT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS nt_delivery_retries_at ON nt_delivery_retries (retry_at)",
]

PREFERENCE_TOPICS = (Preference.Created.TOPIC, Preference.Set.TOPIC, Preference.Covered.TOPIC,
                     Preference.Skipped.TOPIC)
DELIVERY_TOPICS = (Delivery.Deferred.TOPIC, Delivery.Sent.TOPIC, Delivery.Failed.TOPIC)


def epoch(at: datetime) -> int:
    return int(at.timestamp())


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
        self.read_model.write(lambda c: [c.execute(s) for s in SCHEMA])

    def position(self) -> int:
        return self.read_model.tracked(self.name) or 0

    def process(self, notifications: Sequence[Notification], last_id: int) -> None:
        events = [(n.id, self.app.mapper.to_domain_event(n)) for n in notifications]

        def apply(c: Cursor, position: int) -> None:
            # Only what another instance has not applied since this batch was read.
            for notification_id, domain_event in events:
                if notification_id > position:
                    self._apply(c, domain_event)

        self.read_model.write_after(apply, Tracking(self.name, last_id))

    def _apply(self, c: Cursor, e: Any) -> None:
        key = str(e.originator_id)
        if isinstance(e, Preference.Created):
            c.execute(
                "INSERT INTO nt_digest_schedule (preference_id, partner_id, client_id, user_id) "
                "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (key, e.partner_id, e.client_id, e.user_id),
            )
        elif isinstance(e, Preference.Set):
            due = epoch(next_due(e.frequency, e.set_at, None)) if e.email_enabled else None
            c.execute(
                "UPDATE nt_digest_schedule SET enabled = ?, frequency = ?, set_at = ?, last_covered = NULL, "
                "next_due = ? WHERE preference_id = ?",
                (int(e.email_enabled), e.frequency, e.set_at.isoformat(), due, key),
            )
        elif isinstance(e, Preference.Covered | Preference.Skipped):
            c.execute("SELECT enabled, frequency, set_at FROM nt_digest_schedule WHERE preference_id = ?", (key,))
            row = c.fetchone()
            if row is None or not row["enabled"]:
                return
            upcoming = next_due(row["frequency"], datetime.fromisoformat(row["set_at"]), e.due_at)
            c.execute(
                "UPDATE nt_digest_schedule SET last_covered = ?, next_due = ? WHERE preference_id = ?",
                (e.due_at.isoformat(), epoch(upcoming), key),
            )
        elif isinstance(e, Delivery.Deferred):
            c.execute(
                "INSERT INTO nt_delivery_retries (delivery_id, retry_at) VALUES (?, ?) "
                "ON CONFLICT (delivery_id) DO UPDATE SET retry_at = excluded.retry_at",
                (key, epoch(e.retry_at)),
            )
        elif isinstance(e, Delivery.Sent | Delivery.Failed):
            c.execute("DELETE FROM nt_delivery_retries WHERE delivery_id = ?", (key,))

    # --- queries --------------------------------------------------------------------------------

    def due(self, now: datetime, limit: int = 5000) -> list[ScheduledPreference]:
        """Enabled preferences whose next due time is at or before `now`, earliest first."""
        rows = self.read_model.query(
            "SELECT preference_id, partner_id, client_id, user_id, next_due FROM nt_digest_schedule "
            "WHERE next_due IS NOT NULL AND next_due <= ? ORDER BY next_due, preference_id LIMIT ?",
            (epoch(now), limit),
        )
        return [_row(r) for r in rows]

    def of_user(self, partner_id: str, user_id: str) -> list[ScheduledPreference]:
        rows = self.read_model.query(
            "SELECT preference_id, partner_id, client_id, user_id, next_due FROM nt_digest_schedule "
            "WHERE partner_id = ? AND user_id = ? ORDER BY client_id",
            (partner_id, user_id),
        )
        return [_row(r) for r in rows]

    def partners_of(self, user_id: str) -> list[str]:
        rows = self.read_model.query(
            "SELECT DISTINCT partner_id FROM nt_digest_schedule WHERE user_id = ? ORDER BY partner_id", (user_id,)
        )
        return [r["partner_id"] for r in rows]

    def earliest_due(self) -> datetime | None:
        rows = self.read_model.query(
            "SELECT MIN(next_due) AS due FROM nt_digest_schedule WHERE next_due IS NOT NULL"
        )
        value = rows[0]["due"] if rows else None
        return datetime.fromtimestamp(int(value), UTC) if value is not None else None

    def retries_due(self, now: datetime, limit: int = 100) -> list[UUID]:
        rows = self.read_model.query(
            "SELECT delivery_id FROM nt_delivery_retries WHERE retry_at <= ? ORDER BY retry_at LIMIT ?",
            (epoch(now), limit),
        )
        return [UUID(r["delivery_id"]) for r in rows]

    def earliest_retry(self) -> datetime | None:
        rows = self.read_model.query("SELECT MIN(retry_at) AS at FROM nt_delivery_retries")
        value = rows[0]["at"] if rows else None
        return datetime.fromtimestamp(int(value), UTC) if value is not None else None


def _row(r: dict[str, Any]) -> ScheduledPreference:
    due = datetime.fromtimestamp(int(r["next_due"]), UTC) if r["next_due"] is not None else None
    return ScheduledPreference(UUID(r["preference_id"]), r["partner_id"], r["client_id"], r["user_id"], due)
