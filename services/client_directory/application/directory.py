"""The client directory's event store and its use cases.

Inbound platform events are applied by `handle` (called per event by the inbox, inside the
batch's transaction). Portal commands are methods that change aggregates and put the events
they publish into the outbox in the same transaction.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import IntegrityError

from contracts.envelope import CloudEvent, make_event
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
    MemberAdded,
    MemberRemoved,
    MemberRoleChanged,
    PreferenceSet,
    ReminderRequested,
    Topic,
)
from events.envelope import InboundEvent
from events.inbox import ReceivedEvent, Rejected, UnitOfWork
from events.outbox import OutboundMessage, message_id
from events.store import EventStoreApplication
from services.client_directory.domain.model import (
    ClientFigures,
    ClientRelationship,
    Member,
    NotificationPreference,
    client_key,
    figures_key,
    member_key,
    preference_key,
)

SOURCE = "/partner-portal/client-directory"


class CommandRejected(Exception):
    """A command that is illegal in the current state (HTTP 409)."""


class ClientDirectory(EventStoreApplication):
    name = "client_directory"

    # --- inbound facts ------------------------------------------------------------------------

    def handle(self, inbound: InboundEvent, uow: UnitOfWork) -> None:
        partner = inbound.partner_id
        data: Any = inbound.data
        match data:
            case MemberAdded():
                existing = uow.get(member_key(partner, data.user_id))
                uow.add(Member.add(existing, partner, data.user_id, data.email, data.name,
                                   data.role.value, data.locale))
            case MemberRoleChanged():
                self._member(uow, partner, data.user_id).change_role(data.role.value)
            case MemberRemoved():
                self._member(uow, partner, data.user_id).remove()
            case ClientPartnerInvited():
                existing = uow.get(client_key(partner, data.client_id))
                uow.add(ClientRelationship.partner_invited(existing, partner, data.client_id, data.client_name))
            case ClientOnboardingStarted():
                existing = uow.get(client_key(partner, data.client_id))
                uow.add(ClientRelationship.onboarding_started(
                    existing, partner, data.client_id, data.client_name, data.invited_by))
            case ClientVerificationCompleted():
                self._client(uow, partner, data.client_id).complete_verification()
            case ClientVerificationFailed():
                self._client(uow, partner, data.client_id).fail_verification(data.reason)
            case ClientDisconnected():
                self._client(uow, partner, data.client_id).disconnect()
            case ClientRenamed():
                self._client(uow, partner, data.client_id).rename(data.client_name)
            case AccountantAssigned():
                # Members arrive on their own topic, so an assignment may come before the
                # member is known here: it is kept, and shown once the member is known.
                self._client(uow, partner, data.client_id).assign(data.user_id)
            case AccountantUnassigned():
                self._client(uow, partner, data.client_id).unassign(data.user_id)
            case ClientMetricsUpdated():
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
                pass  # the notifier acts on it; nothing of the directory changes
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

    # --- commands from the portal ------------------------------------------------------------

    def _load_client(self, partner_id: str, client_id: str) -> ClientRelationship:
        key = client_key(partner_id, client_id)
        if key not in self.repository:
            raise LookupError(client_id)
        client: ClientRelationship = self.repository.get(key)
        return client

    def _commit(self, *aggregates: Any) -> int | None:
        """Save; a concurrent writer surfaces as CommandRejected (409) rather than a 500."""
        try:
            return self.record(*aggregates)
        except IntegrityError:
            raise CommandRejected("the client changed meanwhile; try again") from None

    def accept_invitation(self, partner_id: str, client_id: str, by: str) -> int | None:
        client = self._load_client(partner_id, client_id)
        try:
            client.accept_invitation(by)
        except Rejected as rejection:
            raise CommandRejected(str(rejection)) from None
        out = self._outbound(Topic.CLIENT_DIRECTORY, "client.invitation_accepted.v1", partner_id, client_id,
                             {"client_id": client_id, "by": by})
        return self._commit(client, *out)

    def decline_invitation(self, partner_id: str, client_id: str, by: str) -> int | None:
        client = self._load_client(partner_id, client_id)
        try:
            client.decline_invitation(by)
        except Rejected as rejection:
            raise CommandRejected(str(rejection)) from None
        out = self._outbound(Topic.CLIENT_DIRECTORY, "client.invitation_declined.v1", partner_id, client_id,
                             {"client_id": client_id, "by": by})
        return self._commit(client, *out)

    def assign(self, partner_id: str, client_id: str, user_id: str) -> int | None:
        client = self._load_client(partner_id, client_id)
        if user_id in client.accountants:
            return None  # PUT is idempotent
        try:
            client.assign(user_id)
        except Rejected as rejection:
            raise CommandRejected(str(rejection)) from None
        out = self._outbound(Topic.CLIENT_DIRECTORY, "client.accountant_assigned.v1", partner_id, client_id,
                             {"client_id": client_id, "user_id": user_id})
        return self._commit(client, *out)

    def unassign(self, partner_id: str, client_id: str, user_id: str) -> int | None:
        client = self._load_client(partner_id, client_id)
        if user_id not in client.accountants:
            return None  # DELETE is idempotent
        client.unassign(user_id)
        out = self._outbound(Topic.CLIENT_DIRECTORY, "client.accountant_unassigned.v1", partner_id, client_id,
                             {"client_id": client_id, "user_id": user_id})
        return self._commit(client, *out)

    def set_preference(self, partner_id: str, client_id: str, user_id: str, email_enabled: bool,
                       frequency: str) -> int | None:
        key = preference_key(partner_id, client_id, user_id)
        preference = (
            self.repository.get(key)
            if key in self.repository
            else NotificationPreference(partner_id=partner_id, client_id=client_id, user_id=user_id)
        )
        preference.set(email_enabled, frequency)
        out = self._outbound(Topic.NOTIFICATIONS, "notification.preference_set.v1", partner_id, client_id,
                             {"client_id": client_id, "user_id": user_id, "email_enabled": email_enabled,
                              "frequency": frequency})
        return self._commit(preference, *out)

    def request_reminder(self, partner_id: str, client_id: str, requested_by: str, tasks: list[str],
                         comment: str, idempotency_key: str | None) -> tuple[str, int | None]:
        """Returns (reminder_id, notification id). The same Idempotency-Key gives the same reminder."""
        if idempotency_key:
            reminder_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{partner_id}/{requested_by}/{idempotency_key}"))
        else:
            reminder_id = str(uuid.uuid4())
        event_id = f"reminder-{reminder_id}"
        if message_id(event_id) in self.repository:
            return reminder_id, None
        out = self._outbound(Topic.NOTIFICATIONS, "notification.reminder_requested.v1", partner_id, client_id,
                             {"reminder_id": reminder_id, "client_id": client_id, "requested_by": requested_by,
                              "tasks": tasks, "comment": comment}, event_id=event_id)
        try:
            return reminder_id, self.record(*out)
        except IntegrityError:
            return reminder_id, None  # the same key, at the same moment: recorded once

    @staticmethod
    def _outbound(topic: Topic, type_: str, partner_id: str, subject: str, data: dict[str, Any],
                  event_id: str | None = None) -> tuple[OutboundMessage, ReceivedEvent]:
        """The message to publish, and its id marked as received: this service consumes
        portal.notifications too, and must not apply its own command a second time."""
        event_ = make_event(id=event_id or str(uuid.uuid4()), source=SOURCE, type=type_, subject=subject,
                            partnerid=partner_id, data=data, time=datetime.now(UTC))
        received = ReceivedEvent(event_id=event_.id, event_type=type_, partner_id=partner_id, subject=subject,
                                 source=SOURCE, kafka_position="api", outcome="applied", reason="")
        return OutboundMessage.of(topic.value, event_), received


def as_cloud_event(message: OutboundMessage) -> CloudEvent:
    return CloudEvent.model_validate(message.cloud_event)
