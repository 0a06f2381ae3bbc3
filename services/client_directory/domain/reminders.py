"""The history of a client's reminders: who asked, what, and what came of each email.

A `Reminder` is recorded by the command that publishes `notification.reminder_requested.v1`,
with the accountants assigned at that moment: each is a `ReminderEmail`, pending until the
notifier's `notification.email_sent.v1` or `email_failed.v1` for it arrives. The notifier
decides the recipients when it dispatches; an outcome for someone not pending (assigned in
between) is kept as a new email of the reminder.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event

from services.client_directory.domain.model import Rejected

NAMESPACE = uuid.UUID("0f9a4e2c-6d1b-5c8e-9a47-3b2d1e0c7f65")
# The notifier's fixed namespace of Message-IDs (it never changes: a resent email keeps its id).
NOTIFIER_MESSAGE_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:partner-portal:notifier:email")
PENDING, SENT, FAILED = "pending", "sent", "failed"


def reminder_key(partner_id: str, reminder_id: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"reminder/{partner_id}/{reminder_id}")


def mail_digest(reminder_id: str, user_id: str) -> str:
    """The part of a reminder email's Message-ID the notifier derives from (reminder, recipient):
    `<reminder-{digest}@domain>`. Delivery events without `reminder_id` are matched by it."""
    name = json.dumps(["reminder", reminder_id, user_id], separators=(",", ":"))
    return uuid.uuid5(NOTIFIER_MESSAGE_IDS, name).hex


def email_key(partner_id: str, digest: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"reminder-email/{partner_id}/{digest}")


def digest_of_message_id(message_id: str) -> str | None:
    """`<reminder-{digest}@domain>` -> digest; None for any other Message-ID."""
    local = message_id.strip("<>").partition("@")[0]
    kind, _, digest = local.partition("-")
    return digest if kind == "reminder" and len(digest) == 32 else None


class Reminder(Aggregate):
    """One reminder an admin requested, identified by (partner_id, reminder_id)."""

    TOPIC = "client_directory:Reminder"

    class Event(Aggregate.Event):
        TOPIC = "client_directory:Reminder.Event"

    class Requested(Aggregate.Created):
        TOPIC = "client_directory:Reminder.Requested"
        partner_id: str
        reminder_id: str
        client_id: str
        requested_by: str
        requested_at: datetime
        tasks: list[str]
        comment: str
        recipients: list[str]

    @event(Requested)
    def __init__(self, partner_id: str, reminder_id: str, client_id: str, requested_by: str,
                 requested_at: datetime, tasks: list[str], comment: str, recipients: list[str]) -> None:
        self.partner_id, self.reminder_id, self.client_id = partner_id, reminder_id, client_id
        self.requested_by, self.requested_at = requested_by, requested_at
        self.tasks, self.comment, self.recipients = list(tasks), comment, list(recipients)

    @staticmethod
    def create_id(partner_id: str, reminder_id: str, **_: Any) -> uuid.UUID:
        return reminder_key(partner_id, reminder_id)


class ReminderEmail(Aggregate):
    """One recipient's email of a reminder: pending, then sent or failed (once)."""

    TOPIC = "client_directory:ReminderEmail"

    class Event(Aggregate.Event):
        TOPIC = "client_directory:ReminderEmail.Event"

    class Expected(Aggregate.Created):
        TOPIC = "client_directory:ReminderEmail.Expected"
        partner_id: str
        reminder_id: str
        client_id: str
        user_id: str

    @event(Expected)
    def __init__(self, partner_id: str, reminder_id: str, client_id: str, user_id: str) -> None:
        self.partner_id, self.reminder_id, self.client_id, self.user_id = partner_id, reminder_id, client_id, user_id
        self.status = PENDING

    @staticmethod
    def create_id(partner_id: str, reminder_id: str, user_id: str, **_: Any) -> uuid.UUID:
        return email_key(partner_id, mail_digest(reminder_id, user_id))

    class Settled(Event):
        TOPIC = "client_directory:ReminderEmail.Settled"
        status: str
        at: datetime
        message_id: str
        reason: str

    def settle(self, status: str, at: datetime, message_id: str, reason: str = "") -> None:
        if self.status != PENDING:
            raise Rejected(f"the reminder email to {self.user_id} is already {self.status}")
        self._settled(status=status, at=at, message_id=message_id, reason=reason)

    @event(Settled)
    def _settled(self, status: str, at: datetime, message_id: str, reason: str) -> None:
        self.status = status
