"""The reminder history read model (GET /v1/clients/{client_id}/reminders): each reminder of a
client, and per recipient whether its email is pending, sent or failed.

A follower of the notification log keeps it (rows and position in one transaction), apart from
the Clients read model: its own tables, its own tracking name. `row_change` is the fold (plain
Python: an event gives one row change); the SQL is projections/reminders_sql.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import IntegrityError, Notification, Tracking

from events.dialect import Cursor
from events.follower import LogFollower
from events.store import EventStoreApplication, ReadModel
from services.client_directory.domain.reminders import Reminder, ReminderEmail
from services.client_directory.projections.reminders_sql import DIALECTS

TOPICS = (Reminder.Requested.TOPIC, ReminderEmail.Expected.TOPIC, ReminderEmail.Settled.TOPIC)
RowChange = tuple[str, tuple[Any, ...]]  # (kind of change, its values): ReminderSQL.changes
# The name shown for a user_id (None when the firm has no such member now).
Names = Callable[[str, str], str | None]


def row_change(position: int, e: Any) -> RowChange | None:
    """What one event changes in the tables."""
    if isinstance(e, Reminder.Requested):
        return "reminder", (e.partner_id, e.reminder_id, e.client_id, e.requested_by,
                            e.requested_at.isoformat(), json.dumps(list(e.tasks)), e.comment, position)
    if isinstance(e, ReminderEmail.Expected):
        return "email", (str(e.originator_id), e.partner_id, e.reminder_id, e.user_id, position)
    if isinstance(e, ReminderEmail.Settled):
        return "settled", (e.status, e.at.isoformat(), str(e.originator_id))
    return None


class ReminderHistory(LogFollower):
    name = "projection:reminders"
    topics: Sequence[str] = TOPICS

    def __init__(self, app: EventStoreApplication, read_model: ReadModel) -> None:
        super().__init__(app)
        self.read_model = read_model
        self.sql = DIALECTS[read_model.kind]()
        read_model.write(lambda c: [c.execute(s) for s in self.sql.schema])

    def position(self) -> int:
        return self.read_model.tracked(self.name) or 0

    def process(self, notifications: Sequence[Notification], last_id: int) -> None:
        events = [(n.id, self.app.mapper.to_domain_event(n)) for n in notifications]

        def apply(c: Cursor, position: int) -> None:
            for notification_id, domain_event in events:
                if notification_id > position:  # not applied by another instance meanwhile
                    change = row_change(notification_id, domain_event)
                    if change is not None:
                        self.sql.write(c, change)

        try:
            self.read_model.write_after(apply, Tracking(self.name, last_id))
        except IntegrityError:
            if self.position() < last_id:  # not "another instance was first": a real conflict
                raise

    def history(self, partner_id: str, client_id: str, names: Names, limit: int = 50) -> list[dict[str, Any]]:
        """The client's reminders, newest first, each with its emails' outcomes (one snapshot)."""
        sql = self.sql

        def run(c: Cursor) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
            c.execute(sql.reminders, (partner_id, client_id, limit))
            reminders = [dict(r) for r in c.fetchall()]
            found = []
            for reminder in reminders:
                c.execute(sql.emails_of, (partner_id, reminder["reminder_id"]))
                found.append((reminder, [dict(r) for r in c.fetchall()]))
            return found

        def person(user_id: str) -> dict[str, Any]:
            return {"user_id": user_id, "name": names(partner_id, user_id)}

        return [{
            "reminder_id": r["reminder_id"], "requested_by": person(r["requested_by"]),
            "requested_at": r["requested_at"], "tasks": json.loads(r["tasks"]), "comment": r["comment"],
            "deliveries": [{**person(e["user_id"]), "status": e["status"], "at": e["at"]} for e in emails],
        } for r, emails in self.read_model.read(run)]
