"""Aggregates of the notifier: who the members are, what it knows of each client, each
member's email preference per client, reminders, and every email as a delivery that is due,
then sent or failed."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event


class Rejected(Exception):
    """A valid fact that is illegal in the current state; the message is the reason on-call reads."""


NAMESPACE = uuid.UUID("a3c8e0a4-5f0e-4b8e-8d7e-4b9a0e6c2f10")


def member_key(partner_id: str, user_id: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"member/{partner_id}/{user_id}")


def client_key(partner_id: str, client_id: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"client/{partner_id}/{client_id}")


def preference_key(partner_id: str, client_id: str, user_id: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"preference/{partner_id}/{client_id}/{user_id}")


def reminder_key(partner_id: str, reminder_id: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"reminder/{partner_id}/{reminder_id}")


def delivery_key(message_id: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"delivery/{message_id}")


class Member(Aggregate):
    """A member of a firm as a recipient: address, name, locale, role."""

    TOPIC = "notifier:Member"

    class Event(Aggregate.Event):
        TOPIC = "notifier:Member.Event"

    class Added(Aggregate.Created):
        TOPIC = "notifier:Member.Added"
        partner_id: str
        user_id: str
        email: str
        name: str
        role: str
        locale: str

    @event(Added)
    def __init__(self, partner_id: str, user_id: str, email: str, name: str, role: str, locale: str) -> None:
        self.partner_id, self.user_id = partner_id, user_id
        self.email, self.name, self.role, self.locale = email, name, role, locale
        self.active = True

    @staticmethod
    def create_id(partner_id: str, user_id: str, **_: Any) -> uuid.UUID:
        return member_key(partner_id, user_id)

    class Rejoined(Event):
        TOPIC = "notifier:Member.Rejoined"
        email: str
        name: str
        role: str
        locale: str

    def rejoin(self, email: str, name: str, role: str, locale: str) -> None:
        if self.active:
            raise Rejected(f"{self.user_id} is already a member of {self.partner_id}")
        self._rejoined(email=email, name=name, role=role, locale=locale)

    @event(Rejoined)
    def _rejoined(self, email: str, name: str, role: str, locale: str) -> None:
        self.email, self.name, self.role, self.locale = email, name, role, locale
        self.active = True

    class RoleChanged(Event):
        TOPIC = "notifier:Member.RoleChanged"
        role: str

    def change_role(self, role: str) -> None:
        if not self.active:
            raise Rejected(f"{self.user_id} is no longer a member")
        if role == self.role:
            raise Rejected(f"{self.user_id} is already {role}")
        self._role_changed(role=role)

    @event(RoleChanged)
    def _role_changed(self, role: str) -> None:
        self.role = role

    class Removed(Event):
        TOPIC = "notifier:Member.Removed"

    def remove(self) -> None:
        if not self.active:
            raise Rejected(f"{self.user_id} is no longer a member")
        self._removed()

    @event(Removed)
    def _removed(self) -> None:
        self.active = False


class ClientFile(Aggregate):
    """What the notifier knows of a client: its name, who is assigned, its latest figures.

    It is opened by whichever fact arrives first (facts come on several topics), and the
    relationship's start or end decides whether digests and reminders may name it.
    """

    TOPIC = "notifier:ClientFile"

    class Event(Aggregate.Event):
        TOPIC = "notifier:ClientFile.Event"

    class Opened(Aggregate.Created):
        TOPIC = "notifier:ClientFile.Opened"
        partner_id: str
        client_id: str

    @event(Opened)
    def __init__(self, partner_id: str, client_id: str) -> None:
        self.partner_id, self.client_id = partner_id, client_id
        self.name = client_id
        self.active = False
        self.accountants: list[str] = []
        self.wallet_amount: str | None = None
        self.wallet_currency: str | None = None
        self.missing_receipts = 0
        self.ready_to_export = 0
        self.as_of: datetime | None = None
        # The directory's status (invited, onboarding, verification_failed, connected); ""
        # until a fact tells it. Accountants never see an invited client.
        self.status = ""

    @staticmethod
    def create_id(partner_id: str, client_id: str, **_: Any) -> uuid.UUID:
        return client_key(partner_id, client_id)

    class Started(Event):
        TOPIC = "notifier:ClientFile.Started"
        name: str

    @event(Started)
    def start(self, name: str) -> None:
        self.name = name
        self.active = True
        self.accountants = []

    class Ended(Event):
        TOPIC = "notifier:ClientFile.Ended"

    def end(self) -> None:
        if not self.active:
            raise Rejected(f"client {self.client_id} is not active")
        self._ended()

    @event(Ended)
    def _ended(self) -> None:
        self.active = False
        self.accountants = []

    class StatusChanged(Event):
        TOPIC = "notifier:ClientFile.StatusChanged"
        status: str

    def change_status(self, status: str) -> None:
        """Follow the relationship's status while it is active (no event when unchanged)."""
        if self.active and status != self.status:
            self._status_changed(status=status)

    @event(StatusChanged)
    def _status_changed(self, status: str) -> None:
        self.status = status

    class Renamed(Event):
        TOPIC = "notifier:ClientFile.Renamed"
        name: str

    @event(Renamed)
    def rename(self, name: str) -> None:
        self.name = name

    class AccountantAssigned(Event):
        TOPIC = "notifier:ClientFile.AccountantAssigned"
        user_id: str

    def assign(self, user_id: str) -> None:
        if user_id in self.accountants:
            raise Rejected(f"{user_id} is already assigned to client {self.client_id}")
        self._assigned(user_id=user_id)

    @event(AccountantAssigned)
    def _assigned(self, user_id: str) -> None:
        self.accountants = [*self.accountants, user_id]

    class AccountantUnassigned(Event):
        TOPIC = "notifier:ClientFile.AccountantUnassigned"
        user_id: str

    def unassign(self, user_id: str) -> None:
        if user_id not in self.accountants:
            raise Rejected(f"{user_id} is not assigned to client {self.client_id}")
        self._unassigned(user_id=user_id)

    @event(AccountantUnassigned)
    def _unassigned(self, user_id: str) -> None:
        self.accountants = [a for a in self.accountants if a != user_id]

    class FiguresUpdated(Event):
        TOPIC = "notifier:ClientFile.FiguresUpdated"
        wallet_amount: str
        wallet_currency: str
        missing_receipts: int
        ready_to_export: int
        as_of: datetime

    def update_figures(self, wallet_amount: str, wallet_currency: str, missing_receipts: int,
                       ready_to_export: int, as_of: datetime) -> None:
        if self.as_of is not None and as_of <= self.as_of:
            raise Rejected(f"figures as of {as_of.isoformat()} are not newer than {self.as_of.isoformat()}: ignored")
        self._figures(wallet_amount=wallet_amount, wallet_currency=wallet_currency,
                      missing_receipts=missing_receipts, ready_to_export=ready_to_export, as_of=as_of)

    @event(FiguresUpdated)
    def _figures(self, wallet_amount: str, wallet_currency: str, missing_receipts: int,
                 ready_to_export: int, as_of: datetime) -> None:
        self.wallet_amount, self.wallet_currency = wallet_amount, wallet_currency
        self.missing_receipts, self.ready_to_export, self.as_of = missing_receipts, ready_to_export, as_of


class Preference(Aggregate):
    """A member's email preference for one client, and the last digest slot it was covered in."""

    TOPIC = "notifier:Preference"

    class Event(Aggregate.Event):
        TOPIC = "notifier:Preference.Event"

    class Created(Aggregate.Created):
        TOPIC = "notifier:Preference.Created"
        partner_id: str
        client_id: str
        user_id: str

    @event(Created)
    def __init__(self, partner_id: str, client_id: str, user_id: str) -> None:
        self.partner_id, self.client_id, self.user_id = partner_id, client_id, user_id
        self.email_enabled = False
        self.frequency = "weekly"
        self.set_at: datetime | None = None
        self.last_covered: datetime | None = None

    @staticmethod
    def create_id(partner_id: str, client_id: str, user_id: str, **_: Any) -> uuid.UUID:
        return preference_key(partner_id, client_id, user_id)

    class Set(Event):
        TOPIC = "notifier:Preference.Set"
        email_enabled: bool
        frequency: str
        set_at: datetime

    @event(Set)
    def set(self, email_enabled: bool, frequency: str, set_at: datetime) -> None:
        # A new setting starts a new schedule: the first digest is the next Monday 10:00.
        self.email_enabled, self.frequency, self.set_at = email_enabled, frequency, set_at
        self.last_covered = None

    class Covered(Event):
        TOPIC = "notifier:Preference.Covered"
        due_at: datetime

    @event(Covered)
    def cover(self, due_at: datetime) -> None:
        self.last_covered = due_at

    class Skipped(Event):
        """The due time passed without a digest for this client (the recipient may no longer
        see it, or left the firm): the schedule moves on, so it is not looked at again."""

        TOPIC = "notifier:Preference.Skipped"
        due_at: datetime
        reason: str

    @event(Skipped)
    def skip(self, due_at: datetime, reason: str) -> None:
        self.last_covered = due_at


class Reminder(Aggregate):
    """An admin's ad-hoc reminder about one client."""

    TOPIC = "notifier:Reminder"

    class Event(Aggregate.Event):
        TOPIC = "notifier:Reminder.Event"

    class Requested(Aggregate.Created):
        TOPIC = "notifier:Reminder.Requested"
        partner_id: str
        reminder_id: str
        client_id: str
        requested_by: str
        tasks: list[str]
        comment: str
        recipients: list[str]
        requested_at: datetime | None
        trace: dict[str, str] | None

    @event(Requested)
    def __init__(self, partner_id: str, reminder_id: str, client_id: str, requested_by: str, tasks: list[str],
                 comment: str, recipients: list[str], requested_at: datetime | None = None,
                 trace: dict[str, str] | None = None) -> None:
        self.partner_id, self.reminder_id, self.client_id = partner_id, reminder_id, client_id
        self.requested_by, self.tasks, self.comment = requested_by, tasks, comment
        # The admin's click (the CloudEvent time): a reminder far older than that is a replay.
        self.requested_at = requested_at
        # The request's trace context (`traceparent`, `tracestate`), so the emails it leads to,
        # dispatched and sent later and maybe by another instance, join the admin's trace.
        self.trace = trace
        # Recipients are chosen when the reminder is dispatched, after the facts published
        # before it were applied (see application/reminders.py); `recipients` at creation is
        # only set by reminders recorded before dispatching was a separate step.
        self.recipients = recipients
        self.state = "dispatched" if recipients else "pending"
        self.reason = ""

    @staticmethod
    def create_id(partner_id: str, reminder_id: str, **_: Any) -> uuid.UUID:
        return reminder_key(partner_id, reminder_id)

    class Dispatched(Event):
        TOPIC = "notifier:Reminder.Dispatched"
        recipients: list[str]

    @event(Dispatched)
    def dispatched(self, recipients: list[str]) -> None:
        self.state, self.recipients = "dispatched", recipients

    class Dropped(Event):
        TOPIC = "notifier:Reminder.Dropped"
        reason: str

    @event(Dropped)
    def dropped(self, reason: str) -> None:
        self.state, self.reason = "dropped", reason


class Delivery(Aggregate):
    """One email: recorded as due (with everything needed to render it) before it is sent,
    then as sent or failed. A restart sends only what is due and not sent."""

    TOPIC = "notifier:Delivery"

    class Event(Aggregate.Event):
        TOPIC = "notifier:Delivery.Event"

    class Due(Aggregate.Created):
        TOPIC = "notifier:Delivery.Due"
        message_id: str
        kind: str
        partner_id: str
        user_id: str
        client_ids: list[str]
        content: dict[str, Any]

    @event(Due)
    def __init__(self, message_id: str, kind: str, partner_id: str, user_id: str, client_ids: list[str],
                 content: dict[str, Any]) -> None:
        self.message_id, self.kind, self.partner_id, self.user_id = message_id, kind, partner_id, user_id
        self.client_ids, self.content = client_ids, content
        self.state = "due"
        self.attempts = 0
        self.outcome = ""
        self.retry_at: datetime | None = None
        self.deferrals = 0

    @staticmethod
    def create_id(message_id: str, **_: Any) -> uuid.UUID:
        return delivery_key(message_id)

    class Sent(Event):
        TOPIC = "notifier:Delivery.Sent"
        attempts: int

    @event(Sent)
    def sent(self, attempts: int) -> None:
        self.state, self.attempts, self.outcome = "sent", attempts, "250 accepted"

    class Deferred(Event):
        """A 4xx that outlasted the quick retries: try again at `retry_at`, others go first."""

        TOPIC = "notifier:Delivery.Deferred"
        attempts: int
        code: int | None
        reason: str
        retry_at: datetime

    @event(Deferred)
    def deferred(self, attempts: int, code: int | None, reason: str, retry_at: datetime) -> None:
        self.state, self.attempts = "deferred", attempts
        self.outcome = f"{code or ''} {reason}".strip()
        self.retry_at = retry_at
        self.deferrals += 1

    class Failed(Event):
        TOPIC = "notifier:Delivery.Failed"
        attempts: int
        code: int | None
        reason: str

    @event(Failed)
    def failed(self, attempts: int, code: int | None, reason: str) -> None:
        self.state, self.attempts, self.outcome = "failed", attempts, f"{code or ''} {reason}".strip()
