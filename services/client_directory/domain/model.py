"""Aggregates of the client directory. Each method is a verb of the domain; it checks the
rule first and raises Rejected (with the reason on-call reads) before anything changes."""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from eventsourcing.domain import Aggregate, event


class Rejected(Exception):
    """A valid fact that is illegal in the current state; the message is the reason on-call reads."""


NAMESPACE = uuid.UUID("7d7c0e3a-3a55-4d8e-9d8f-1f0a6b2b9c01")
# A batch computes each key twice (to load its aggregates, then to apply): uuid5 hashes.
_remembered = functools.lru_cache(maxsize=8192)  # about a batch: a few MB at most


@_remembered
def client_key(partner_id: str, client_id: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"client/{partner_id}/{client_id}")


@_remembered
def member_key(partner_id: str, user_id: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"member/{partner_id}/{user_id}")


@_remembered
def figures_key(partner_id: str, client_id: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"figures/{partner_id}/{client_id}")


@_remembered
def preference_key(partner_id: str, client_id: str, user_id: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"preference/{partner_id}/{client_id}/{user_id}")


@_remembered
def assignments_key(partner_id: str, user_id: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"assignments/{partner_id}/{user_id}")


class Status(StrEnum):
    INVITED = "invited"  # the client added the firm; waiting for the firm to accept
    ONBOARDING = "onboarding"  # the firm invited the client; verification under way
    VERIFICATION_FAILED = "verification_failed"
    CONNECTED = "connected"
    DECLINED = "declined"  # gone from every tab
    DISCONNECTED = "disconnected"  # gone from every tab


ENDED = (Status.DECLINED, Status.DISCONNECTED)


class ClientRelationship(Aggregate):
    """A firm's relationship with one client company, identified by (partner_id, client_id)."""

    TOPIC = "client_directory:ClientRelationship"

    class Event(Aggregate.Event):
        TOPIC = "client_directory:ClientRelationship.Event"

    class Started(Aggregate.Created):
        TOPIC = "client_directory:ClientRelationship.Started"
        partner_id: str
        client_id: str
        name: str
        status: str
        invited_by: str

    @event(Started)
    def __init__(self, partner_id: str, client_id: str, name: str, status: str, invited_by: str) -> None:
        self.partner_id = partner_id
        self.client_id = client_id
        self.name = name
        self.status = Status(status)
        self.invited_by = invited_by
        self.accountants: list[str] = []
        self.failure_reason = ""

    @staticmethod
    def create_id(partner_id: str, client_id: str, **_: Any) -> uuid.UUID:
        return client_key(partner_id, client_id)

    # --- starting again after an ended relationship ---------------------------------------

    @classmethod
    def partner_invited(cls, existing: ClientRelationship | None, partner_id: str, client_id: str,
                        name: str) -> ClientRelationship:
        if existing is None:
            return cls(partner_id=partner_id, client_id=client_id, name=name,
                       status=Status.INVITED.value, invited_by="")
        existing._restart(Status.INVITED, name, "")
        return existing

    @classmethod
    def onboarding_started(cls, existing: ClientRelationship | None, partner_id: str,
                           client_id: str, name: str, invited_by: str) -> ClientRelationship:
        if existing is None:
            return cls(partner_id=partner_id, client_id=client_id, name=name,
                       status=Status.ONBOARDING.value, invited_by=invited_by)
        existing._restart(Status.ONBOARDING, name, invited_by)
        return existing

    def _restart(self, status: Status, name: str, invited_by: str) -> None:
        if self.status not in ENDED:
            raise Rejected(f"client {self.client_id} is already {self.status.value}")
        self._restarted(status=status.value, name=name, invited_by=invited_by)

    class Restarted(Event):
        TOPIC = "client_directory:ClientRelationship.Restarted"
        status: str
        name: str
        invited_by: str

    @event(Restarted)
    def _restarted(self, status: str, name: str, invited_by: str) -> None:
        self.status = Status(status)
        self.name = name
        self.invited_by = invited_by
        self.accountants = []
        self.failure_reason = ""

    # --- invitations -------------------------------------------------------------------------

    class InvitationAccepted(Event):
        TOPIC = "client_directory:ClientRelationship.InvitationAccepted"
        by: str

    def accept_invitation(self, by: str) -> None:
        if self.status is not Status.INVITED:
            raise Rejected(f"client {self.client_id} has no pending invitation (it is {self.status.value})")
        self._accepted(by=by)

    @event(InvitationAccepted)
    def _accepted(self, by: str) -> None:
        self.status = Status.CONNECTED

    class InvitationDeclined(Event):
        TOPIC = "client_directory:ClientRelationship.InvitationDeclined"
        by: str

    def decline_invitation(self, by: str) -> None:
        if self.status is not Status.INVITED:
            raise Rejected(f"client {self.client_id} has no pending invitation (it is {self.status.value})")
        self._declined(by=by)

    @event(InvitationDeclined)
    def _declined(self, by: str) -> None:
        self.status = Status.DECLINED
        self.accountants = []

    # --- verification ------------------------------------------------------------------------

    class VerificationCompleted(Event):
        TOPIC = "client_directory:ClientRelationship.VerificationCompleted"

    def complete_verification(self) -> None:
        if self.status not in (Status.ONBOARDING, Status.VERIFICATION_FAILED):
            raise Rejected(f"client {self.client_id} is not in verification (it is {self.status.value})")
        self._verified()

    @event(VerificationCompleted)
    def _verified(self) -> None:
        self.status = Status.CONNECTED
        self.failure_reason = ""

    class VerificationFailed(Event):
        TOPIC = "client_directory:ClientRelationship.VerificationFailed"
        reason: str

    def fail_verification(self, reason: str) -> None:
        if self.status not in (Status.ONBOARDING, Status.VERIFICATION_FAILED):
            raise Rejected(f"client {self.client_id} is not in verification (it is {self.status.value})")
        self._failed(reason=reason)

    @event(VerificationFailed)
    def _failed(self, reason: str) -> None:
        self.status = Status.VERIFICATION_FAILED
        self.failure_reason = reason

    # --- life of a connected client ------------------------------------------------------------

    class Disconnected(Event):
        TOPIC = "client_directory:ClientRelationship.Disconnected"

    def disconnect(self) -> None:
        if self.status in ENDED:
            raise Rejected(f"client {self.client_id} is already {self.status.value}")
        self._disconnected()

    @event(Disconnected)
    def _disconnected(self) -> None:
        self.status = Status.DISCONNECTED
        self.accountants = []

    class Renamed(Event):
        TOPIC = "client_directory:ClientRelationship.Renamed"
        name: str

    def rename(self, name: str) -> None:
        if name == self.name:
            raise Rejected(f"client {self.client_id} is already named {name!r}")
        self._renamed(name=name)

    @event(Renamed)
    def _renamed(self, name: str) -> None:
        self.name = name

    class AccountantAssigned(Event):
        TOPIC = "client_directory:ClientRelationship.AccountantAssigned"
        user_id: str

    def assign(self, user_id: str) -> None:
        if self.status in ENDED:
            raise Rejected(f"client {self.client_id} is {self.status.value}: no assignments")
        if user_id in self.accountants:
            raise Rejected(f"{user_id} is already assigned to client {self.client_id}")
        self._assigned(user_id=user_id)

    @event(AccountantAssigned)
    def _assigned(self, user_id: str) -> None:
        self.accountants = [*self.accountants, user_id]

    class AccountantUnassigned(Event):
        TOPIC = "client_directory:ClientRelationship.AccountantUnassigned"
        user_id: str

    def unassign(self, user_id: str) -> None:
        if user_id not in self.accountants:
            raise Rejected(f"{user_id} is not assigned to client {self.client_id}")
        self._unassigned(user_id=user_id)

    @event(AccountantUnassigned)
    def _unassigned(self, user_id: str) -> None:
        self.accountants = [a for a in self.accountants if a != user_id]


class ClientFigures(Aggregate):
    """The client's latest figures. Kept apart from the relationship because they arrive on
    their own topic, possibly before the relationship is known; a newer as_of wins."""

    TOPIC = "client_directory:ClientFigures"

    class Event(Aggregate.Event):
        TOPIC = "client_directory:ClientFigures.Event"

    class Created(Aggregate.Created):
        TOPIC = "client_directory:ClientFigures.Created"
        partner_id: str
        client_id: str

    @event(Created)
    def __init__(self, partner_id: str, client_id: str) -> None:
        self.partner_id = partner_id
        self.client_id = client_id
        self.as_of: datetime | None = None
        self.wallet_amount: str | None = None
        self.wallet_currency: str | None = None
        self.missing_receipts = 0
        self.ready_to_export = 0

    @staticmethod
    def create_id(partner_id: str, client_id: str, **_: Any) -> uuid.UUID:
        return figures_key(partner_id, client_id)

    class Updated(Event):
        TOPIC = "client_directory:ClientFigures.Updated"
        wallet_amount: str
        wallet_currency: str
        missing_receipts: int
        ready_to_export: int
        as_of: datetime

    def update(self, wallet_amount: str, wallet_currency: str, missing_receipts: int,
               ready_to_export: int, as_of: datetime) -> None:
        if self.as_of is not None and as_of <= self.as_of:
            raise Rejected(
                f"figures as of {as_of.isoformat()} are not newer than {self.as_of.isoformat()}: ignored"
            )
        self._updated(wallet_amount=wallet_amount, wallet_currency=wallet_currency,
                      missing_receipts=missing_receipts, ready_to_export=ready_to_export, as_of=as_of)

    @event(Updated)
    def _updated(self, wallet_amount: str, wallet_currency: str, missing_receipts: int,
                 ready_to_export: int, as_of: datetime) -> None:
        self.wallet_amount = wallet_amount
        self.wallet_currency = wallet_currency
        self.missing_receipts = missing_receipts
        self.ready_to_export = ready_to_export
        self.as_of = as_of


class Member(Aggregate):
    """A member of a firm, identified by (partner_id, user_id)."""

    TOPIC = "client_directory:Member"

    class Event(Aggregate.Event):
        TOPIC = "client_directory:Member.Event"

    class Added(Aggregate.Created):
        TOPIC = "client_directory:Member.Added"
        partner_id: str
        user_id: str
        email: str
        name: str
        role: str
        locale: str

    @event(Added)
    def __init__(self, partner_id: str, user_id: str, email: str, name: str, role: str, locale: str) -> None:
        self.partner_id = partner_id
        self.user_id = user_id
        self.email = email
        self.name = name
        self.role = role
        self.locale = locale
        self.active = True

    @staticmethod
    def create_id(partner_id: str, user_id: str, **_: Any) -> uuid.UUID:
        return member_key(partner_id, user_id)

    @classmethod
    def add(cls, existing: Member | None, partner_id: str, user_id: str, email: str, name: str,
            role: str, locale: str) -> Member:
        if existing is None:
            return cls(partner_id=partner_id, user_id=user_id, email=email, name=name, role=role, locale=locale)
        if existing.active:
            raise Rejected(f"{user_id} is already a member of {partner_id}")
        existing._rejoined(email=email, name=name, role=role, locale=locale)
        return existing

    class Rejoined(Event):
        TOPIC = "client_directory:Member.Rejoined"
        email: str
        name: str
        role: str
        locale: str

    @event(Rejoined)
    def _rejoined(self, email: str, name: str, role: str, locale: str) -> None:
        self.email, self.name, self.role, self.locale = email, name, role, locale
        self.active = True

    class RoleChanged(Event):
        TOPIC = "client_directory:Member.RoleChanged"
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
        TOPIC = "client_directory:Member.Removed"

    def remove(self) -> None:
        if not self.active:
            raise Rejected(f"{self.user_id} is no longer a member")
        self._removed()

    @event(Removed)
    def _removed(self) -> None:
        self.active = False


class Assignments(Aggregate):
    """The clients one user is assigned to within a firm.

    An index kept in the same unit of work as every change to a relationship's accountants,
    so removing a member can unassign them from each of their clients in the event store.
    It exists apart from Member because an assignment may arrive before the member does.
    """

    TOPIC = "client_directory:Assignments"

    class Event(Aggregate.Event):
        TOPIC = "client_directory:Assignments.Event"

    class Created(Aggregate.Created):
        TOPIC = "client_directory:Assignments.Created"
        partner_id: str
        user_id: str

    @event(Created)
    def __init__(self, partner_id: str, user_id: str) -> None:
        self.partner_id = partner_id
        self.user_id = user_id
        self.clients: list[str] = []

    @staticmethod
    def create_id(partner_id: str, user_id: str, **_: Any) -> uuid.UUID:
        return assignments_key(partner_id, user_id)

    class Noted(Event):
        TOPIC = "client_directory:Assignments.Noted"
        client_id: str

    def note(self, client_id: str) -> None:
        if client_id not in self.clients:
            self._noted(client_id=client_id)

    @event(Noted)
    def _noted(self, client_id: str) -> None:
        self.clients = [*self.clients, client_id]

    class Forgotten(Event):
        TOPIC = "client_directory:Assignments.Forgotten"
        client_id: str

    def forget(self, client_id: str) -> None:
        if client_id in self.clients:
            self._forgotten(client_id=client_id)

    @event(Forgotten)
    def _forgotten(self, client_id: str) -> None:
        self.clients = [c for c in self.clients if c != client_id]


class NotificationPreference(Aggregate):
    """A member's email setting for one client (shown in View details)."""

    TOPIC = "client_directory:NotificationPreference"

    class Event(Aggregate.Event):
        TOPIC = "client_directory:NotificationPreference.Event"

    class Created(Aggregate.Created):
        TOPIC = "client_directory:NotificationPreference.Created"
        partner_id: str
        client_id: str
        user_id: str

    @event(Created)
    def __init__(self, partner_id: str, client_id: str, user_id: str) -> None:
        self.partner_id = partner_id
        self.client_id = client_id
        self.user_id = user_id
        self.email_enabled = False
        self.frequency = "weekly"

    @staticmethod
    def create_id(partner_id: str, client_id: str, user_id: str, **_: Any) -> uuid.UUID:
        return preference_key(partner_id, client_id, user_id)

    class Set(Event):
        TOPIC = "client_directory:NotificationPreference.Set"
        email_enabled: bool
        frequency: str

    @event(Set)
    def set(self, email_enabled: bool, frequency: str) -> None:
        self.email_enabled = email_enabled
        self.frequency = frequency
