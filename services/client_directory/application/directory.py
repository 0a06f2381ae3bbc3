"""The client directory's event store and its use cases.

Inbound platform events are applied by `handle` (called per event by the inbox, inside the
batch's transaction). Portal commands are methods that change aggregates and put the events
they publish into the outbox in the same transaction.

Every change to a relationship's accountants goes through `_changing`, which keeps each
user's `Assignments` index in the same unit of work: that index is how removing a member
unassigns them from every client in the event store, not only in the read model.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from eventsourcing.persistence import IntegrityError

from contracts.envelope import make_event
from contracts.events import (
    AccountantAssigned,
    AccountantUnassigned,
    ClientDisconnected,
    ClientMetricsUpdated,
    ClientOnboardingStarted,
    ClientPartnerInvited,
    ClientRenamed,
    ClientVerificationCompleted,
    ClientVerificationFailed,
    EmailFailed,
    EmailSent,
    MemberAdded,
    MemberRemoved,
    MemberRoleChanged,
    PreferenceSet,
    ReminderRequested,
    Topic,
)
from events import tracing
from events.envelope import InboundEvent
from events.inbox import InboxEntry, UnitOfWork
from events.outbox import OutboundMessage, message_id
from events.store import EventStoreApplication
from services.client_directory.application.reminders import outcome_keys, record_outcome, reminder_log
from services.client_directory.domain.model import (
    ENDED,
    Assignments,
    ClientFigures,
    ClientRelationship,
    Member,
    NotificationPreference,
    Rejected,
    assignments_key,
    client_key,
    figures_key,
    member_key,
    preference_key,
)

SOURCE = "/partner-portal/client-directory"
COMMAND_ATTEMPTS = 5
F = TypeVar("F", bound=Callable[..., Any])


def _command(method: F) -> F:
    """A portal command in a span (child of the HTTP request's): the events it puts into the
    outbox carry that span's context (events.outbox.OutboundMessage.of), so the relay, the
    consumers and the emails join the command's trace. Untraced, the method as it is."""
    name = f"command {method.__name__}"

    @functools.wraps(method)
    def traced(self: ClientDirectory, partner_id: str, *args: Any, **kwargs: Any) -> Any:
        tracer = tracing.tracer(self.name)
        if tracer is None:
            return method(self, partner_id, *args, **kwargs)
        with tracer.start_as_current_span(name, attributes={"portal.partner_id": partner_id}):
            return method(self, partner_id, *args, **kwargs)

    return cast(F, traced)


class CommandRejected(Exception):
    """A command that is illegal in the current state (HTTP 409)."""


class NotAMember(Exception):
    """The user a command names is not a member of the caller's firm (HTTP 422)."""


class IdempotencyKeyReused(Exception):
    """An Idempotency-Key already used for a different request (HTTP 422)."""


class ClientDirectory(EventStoreApplication):
    name = "client_directory"

    # --- inbound facts ------------------------------------------------------------------------

    @staticmethod
    def inbox_keys(inbound: InboundEvent) -> list[uuid.UUID]:
        """The aggregates `handle` reads for this event: the inbox loads a whole batch's in
        one query (a miss costs one more read, never a wrong result)."""
        partner, data = inbound.partner_id, inbound.data
        fields = data.__dict__  # getattr with a default is slow on pydantic models that lack the field
        client, user = fields.get("client_id"), fields.get("user_id")
        if isinstance(data, ClientMetricsUpdated):
            return [figures_key(partner, data.client_id)]
        if isinstance(data, PreferenceSet):
            return [preference_key(partner, data.client_id, data.user_id)]
        if isinstance(data, EmailSent | EmailFailed):
            return outcome_keys(partner, data)
        keys = [client_key(partner, client)] if isinstance(client, str) else []
        if isinstance(user, str):
            keys += [member_key(partner, user), assignments_key(partner, user)]
        return keys

    def handle(self, inbound: InboundEvent, uow: UnitOfWork) -> None:
        """Apply one inbound fact, or raise Rejected before changing anything."""
        partner = inbound.partner_id
        data: Any = inbound.data
        _refuse_nul(inbound)
        _refuse_unaddressable(data)
        match data:
            case MemberAdded():
                existing = uow.get(member_key(partner, data.user_id))
                uow.add(Member.add(existing, partner, data.user_id, data.email, data.name,
                                   data.role.value, data.locale))
            case MemberRoleChanged():
                self._member(uow, partner, data.user_id).change_role(data.role.value)
            case MemberRemoved():
                self._member(uow, partner, data.user_id).remove()
                self._unassign_everywhere(uow, partner, data.user_id)
            case ClientPartnerInvited():
                existing = uow.get(client_key(partner, data.client_id))
                if existing is None:
                    uow.add(ClientRelationship.partner_invited(None, partner, data.client_id,
                                                               data.client_name))
                else:
                    self._changing(uow, existing, lambda c: ClientRelationship.partner_invited(
                        c, partner, data.client_id, data.client_name))
            case ClientOnboardingStarted():
                existing = uow.get(client_key(partner, data.client_id))
                if existing is None:
                    uow.add(ClientRelationship.onboarding_started(
                        None, partner, data.client_id, data.client_name, data.invited_by))
                else:
                    self._changing(uow, existing, lambda c: ClientRelationship.onboarding_started(
                        c, partner, data.client_id, data.client_name, data.invited_by))
            case ClientVerificationCompleted():
                self._client(uow, partner, data.client_id).complete_verification()
            case ClientVerificationFailed():
                self._client(uow, partner, data.client_id).fail_verification(data.reason)
            case ClientDisconnected():
                self._changing(uow, self._client(uow, partner, data.client_id),
                               lambda c: c.disconnect())
            case ClientRenamed():
                self._client(uow, partner, data.client_id).rename(data.client_name)
            case AccountantAssigned():
                client = self._client(uow, partner, data.client_id)
                # Members arrive on their own topic, so an assignment may come before the
                # member is known here: it is kept, and shown once the member is added. A
                # member already removed is not assigned again (their removal came first).
                member: Member | None = uow.get(member_key(partner, data.user_id))
                if member is not None and not member.active:
                    raise Rejected(f"{data.user_id} is no longer a member of {partner}")
                self._changing(uow, client, lambda c: c.assign(data.user_id))
            case AccountantUnassigned():
                self._changing(uow, self._client(uow, partner, data.client_id),
                               lambda c: c.unassign(data.user_id))
            case ClientMetricsUpdated():
                # Figures have their own topic and may come before the relationship: kept,
                # and shown once (and while) the client is on a tab.
                figures = uow.get(figures_key(partner, data.client_id))
                if figures is None:
                    figures = uow.add(ClientFigures(partner_id=partner, client_id=data.client_id))
                figures.update(data.wallet_balance.amount, data.wallet_balance.currency,
                               data.missing_receipts, data.ready_to_export, data.as_of)
            case PreferenceSet():
                preference = uow.get(preference_key(partner, data.client_id, data.user_id))
                if preference is None:
                    preference = uow.add(NotificationPreference(
                        partner_id=partner, client_id=data.client_id, user_id=data.user_id))
                preference.set(data.email_enabled, data.frequency.value)
            case ReminderRequested():
                pass  # the notifier acts on it; the history is recorded by the command
            case EmailSent() | EmailFailed():
                record_outcome(uow, partner, data, inbound.envelope.time)  # reminder history
            case _:
                raise Rejected(f"{inbound.type} is not handled by the client directory")

    @staticmethod
    def _client(uow: UnitOfWork, partner_id: str, client_id: str) -> ClientRelationship:
        client = uow.get(client_key(partner_id, client_id))
        if client is None:
            raise Rejected(f"client {client_id} of {partner_id} was never invited or onboarded")
        return client

    @staticmethod
    def _member(uow: UnitOfWork, partner_id: str, user_id: str) -> Member:
        member = uow.get(member_key(partner_id, user_id))
        if member is None:
            raise Rejected(f"{user_id} was never a member of {partner_id}")
        return member

    @staticmethod
    def _changing(uow: UnitOfWork, client: ClientRelationship,
                  change: Callable[[ClientRelationship], Any]) -> None:
        """Apply `change` to the client and bring the users' Assignments in step with it."""
        before = set(client.accountants)
        change(client)
        after = set(client.accountants)
        for user_id in sorted(before ^ after):
            index: Assignments | None = uow.get(assignments_key(client.partner_id, user_id))
            if index is None:
                index = uow.add(Assignments(partner_id=client.partner_id, user_id=user_id))
            if user_id in after:
                index.note(client.client_id)
            else:
                index.forget(client.client_id)

    def _unassign_everywhere(self, uow: UnitOfWork, partner_id: str, user_id: str) -> None:
        index: Assignments | None = uow.get(assignments_key(partner_id, user_id))
        if index is None:
            return
        for client_id in list(index.clients):
            client: ClientRelationship | None = uow.get(client_key(partner_id, client_id))
            if client is not None and user_id in client.accountants:
                self._changing(uow, client, lambda c: c.unassign(user_id))
            else:
                index.forget(client_id)  # cannot happen while every change goes through here

    # --- commands from the portal ------------------------------------------------------------

    def _execute(self, command: Callable[[UnitOfWork], Sequence[Any]]) -> int | None:
        """Run a command on fresh aggregates and save it with what it publishes.

        The consumer may save the same aggregates meanwhile (optimistic concurrency): the
        command is then run again on the new state; after a few tries it is a 409.
        """
        for _ in range(COMMAND_ATTEMPTS):
            uow = UnitOfWork(self)
            extra = command(uow)
            try:
                return self.record(*uow.changed(), *extra)
            except IntegrityError:
                continue
        raise CommandRejected("the client keeps changing; try again")

    @staticmethod
    def _current_client(uow: UnitOfWork, partner_id: str, client_id: str) -> ClientRelationship:
        client: ClientRelationship | None = uow.get(client_key(partner_id, client_id))
        if client is None or client.status in ENDED:
            raise LookupError(client_id)
        return client

    @staticmethod
    def _active_member(uow: UnitOfWork, partner_id: str, user_id: str) -> Member:
        member: Member | None = uow.get(member_key(partner_id, user_id))
        if member is None or not member.active:
            raise NotAMember(f"{user_id} is not a member of this firm")
        return member

    @_command
    def accept_invitation(self, partner_id: str, client_id: str, by: str) -> int | None:
        def command(uow: UnitOfWork) -> Sequence[Any]:
            client = self._current_client(uow, partner_id, client_id)
            _as_command(lambda: client.accept_invitation(by))
            return self._outbound(Topic.CLIENT_DIRECTORY, "client.invitation_accepted.v1", partner_id,
                                  client_id, {"client_id": client_id, "by": by})

        return self._execute(command)

    @_command
    def decline_invitation(self, partner_id: str, client_id: str, by: str) -> int | None:
        def command(uow: UnitOfWork) -> Sequence[Any]:
            client = self._current_client(uow, partner_id, client_id)
            # Declining ends the relationship, which clears its accountants.
            self._changing(uow, client, lambda c: _as_command(lambda: c.decline_invitation(by)))
            return self._outbound(Topic.CLIENT_DIRECTORY, "client.invitation_declined.v1", partner_id,
                                  client_id, {"client_id": client_id, "by": by})

        return self._execute(command)

    @_command
    def assign(self, partner_id: str, client_id: str, user_id: str) -> int | None:
        """Assign a member; assigning someone already assigned changes nothing (PUT)."""

        def command(uow: UnitOfWork) -> Sequence[Any]:
            client = self._current_client(uow, partner_id, client_id)
            self._active_member(uow, partner_id, user_id)
            if user_id in client.accountants:
                return ()
            self._changing(uow, client, lambda c: _as_command(lambda: c.assign(user_id)))
            return self._outbound(Topic.CLIENT_DIRECTORY, "client.accountant_assigned.v1", partner_id,
                                  client_id, {"client_id": client_id, "user_id": user_id})

        return self._execute(command)

    @_command
    def unassign(self, partner_id: str, client_id: str, user_id: str) -> int | None:
        """Unassign; unassigning a member who is not assigned changes nothing (DELETE)."""

        def command(uow: UnitOfWork) -> Sequence[Any]:
            client = self._current_client(uow, partner_id, client_id)
            if user_id not in client.accountants:
                self._active_member(uow, partner_id, user_id)
                return ()
            # A kept assignment of a member not known yet may be undone too: it is real.
            self._changing(uow, client, lambda c: c.unassign(user_id))
            return self._outbound(Topic.CLIENT_DIRECTORY, "client.accountant_unassigned.v1",
                                  partner_id, client_id, {"client_id": client_id, "user_id": user_id})

        return self._execute(command)

    @_command
    def set_preference(self, partner_id: str, client_id: str, user_id: str, email_enabled: bool,
                       frequency: str) -> int | None:
        def command(uow: UnitOfWork) -> Sequence[Any]:
            preference = uow.get(preference_key(partner_id, client_id, user_id))
            if preference is None:
                preference = uow.add(NotificationPreference(
                    partner_id=partner_id, client_id=client_id, user_id=user_id))
            preference.set(email_enabled, frequency)
            return self._outbound(Topic.NOTIFICATIONS, "notification.preference_set.v1", partner_id,
                                  client_id, {"client_id": client_id, "user_id": user_id,
                                              "email_enabled": email_enabled, "frequency": frequency})

        return self._execute(command)

    @_command
    def request_reminder(self, partner_id: str, client_id: str, requested_by: str, tasks: list[str],
                         comment: str, idempotency_key: str | None) -> tuple[str, int | None]:
        """Returns (reminder_id, notification id). The same Idempotency-Key (per firm and
        admin) gives the same reminder, published once; reused for another request: 422."""
        if idempotency_key:
            reminder_id = str(uuid.uuid5(uuid.NAMESPACE_URL,
                                         f"{partner_id}/{requested_by}/{idempotency_key}"))
        else:
            reminder_id = str(uuid.uuid4())
        event_id = f"reminder-{reminder_id}"
        data = {"reminder_id": reminder_id, "client_id": client_id, "requested_by": requested_by,
                "tasks": tasks, "comment": comment}

        def already() -> bool:
            key = message_id(event_id)
            if key not in self.repository:
                return False
            earlier: OutboundMessage = self.repository.get(key)
            if earlier.cloud_event.get("data") != data:
                raise IdempotencyKeyReused("this Idempotency-Key was used for another reminder")
            return True

        if already():
            return reminder_id, None
        uow = UnitOfWork(self)
        client = self._current_client(uow, partner_id, client_id)
        # The history (GET .../reminders): pending for each accountant assigned now.
        history = reminder_log(partner_id, reminder_id, client_id, list(client.accountants), requested_by,
                               tasks, comment, datetime.now(UTC))
        out = self._outbound(Topic.NOTIFICATIONS, "notification.reminder_requested.v1", partner_id,
                             client_id, data, event_id=event_id)
        try:
            return reminder_id, self.record(*out, *history)
        except IntegrityError:
            if already():  # the same key at the same moment: recorded once
                return reminder_id, None
            raise

    @staticmethod
    def _outbound(topic: Topic, type_: str, partner_id: str, subject: str, data: dict[str, Any],
                  event_id: str | None = None) -> tuple[OutboundMessage, InboxEntry]:
        """The message to publish, and its id marked as received: this service consumes
        portal.notifications too, and must not apply its own command a second time."""
        event_ = make_event(id=event_id or str(uuid.uuid4()), source=SOURCE, type=type_,
                            subject=subject, partnerid=partner_id, data=data, time=datetime.now(UTC))
        received = InboxEntry(event_id=event_.id, event_type=type_, partner_id=partner_id,
                              subject=subject, source=SOURCE, kafka_position="api", outcome="applied")
        return OutboundMessage.of(topic.value, event_), received


def _as_command(rule: Callable[[], Any]) -> None:
    """A domain rule broken by a command is the caller's conflict (409), not an inbound rejection."""
    try:
        rule()
    except Rejected as rejection:
        raise CommandRejected(str(rejection)) from None


UNADDRESSABLE = (".", "..")


def _refuse_unaddressable(data: Any) -> None:
    """Client and user ids are path segments of the API (`/v1/clients/{client_id}`): one with a
    "/" (which Starlette decodes from %2F before routing) or a dot segment could be listed but
    never opened, accepted, assigned or reminded. Such an event is refused, with its reason."""
    fields = data.__dict__  # getattr with a default is slow on pydantic models that lack the field
    for name in ("client_id", "user_id"):
        value = fields.get(name)
        if isinstance(value, str) and ("/" in value or value in UNADDRESSABLE):
            raise Rejected(f"{name} {value!r} cannot be used in the API: ids may not contain '/' "
                           "nor be '.' or '..'")


def _refuse_nul(inbound: InboundEvent) -> None:
    # PostgreSQL text cannot hold NUL: such an id would stall the read model for good.
    # JSON can only carry one escaped, so a record without that escape has none.
    value = inbound.record.value
    if value is not None and b"\\u0000" not in value:
        return
    data = inbound.data
    values = [inbound.partner_id, *(v for v in data.model_dump().values() if isinstance(v, str))]
    if any("\x00" in v for v in values):
        raise Rejected("an id or name contains a NUL character")
