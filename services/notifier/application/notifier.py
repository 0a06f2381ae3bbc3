"""The notifier's event store and how inbound facts change it.

A reminder is recorded as pending with the inbound event; it is turned into one due
Delivery per assigned accountant later, in one transaction, by the dispatcher
(application/reminders.py), once the facts published before it were applied: Kafka orders
records within a partition only, and a reminder must not overtake the assignment it is about.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

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
    InvitationAccepted,
    InvitationDeclined,
    MemberAdded,
    MemberRemoved,
    MemberRoleChanged,
    PreferenceSet,
    ReminderRequested,
)
from events import tracing
from events.envelope import InboundEvent
from events.inbox import UnitOfWork
from events.store import EventStoreApplication
from services.notifier.domain.model import (
    ClientFile,
    Delivery,
    Member,
    Preference,
    Rejected,
    Reminder,
    client_key,
    member_key,
    preference_key,
    reminder_key,
)
from services.notifier.domain.recipients import reminder_exclusion, reminder_recipients
from services.notifier.emails.render import reminder_message_id

REMINDER_MAX_AGE = timedelta(hours=24)


class Notifier(EventStoreApplication):
    name = "notifier"

    def handle(self, inbound: InboundEvent, uow: UnitOfWork) -> None:
        partner = inbound.partner_id
        data: Any = inbound.data
        match data:
            case MemberAdded():
                member = uow.get(member_key(partner, data.user_id))
                if member is None:
                    uow.add(Member(partner_id=partner, user_id=data.user_id, email=data.email, name=data.name,
                                   role=data.role.value, locale=data.locale))
                else:
                    member.rejoin(data.email, data.name, data.role.value, data.locale)
            case MemberRoleChanged():
                self._member(uow, partner, data.user_id).change_role(data.role.value)
            case MemberRemoved():
                self._member(uow, partner, data.user_id).remove()
            case ClientPartnerInvited() | ClientOnboardingStarted():
                client = self._file(uow, partner, data.client_id)
                if client.active:
                    raise Rejected(f"client {data.client_id} is already active")
                client.start(data.client_name)
                client.change_status("invited" if isinstance(data, ClientPartnerInvited) else "onboarding")
            case ClientDisconnected() | InvitationDeclined():
                self._file(uow, partner, data.client_id).end()
            case ClientRenamed():
                self._file(uow, partner, data.client_id).rename(data.client_name)
            case AccountantAssigned():
                self._file(uow, partner, data.client_id).assign(data.user_id)
            case AccountantUnassigned():
                self._file(uow, partner, data.client_id).unassign(data.user_id)
            case ClientMetricsUpdated():
                self._file(uow, partner, data.client_id).update_figures(
                    data.wallet_balance.amount, data.wallet_balance.currency, data.missing_receipts,
                    data.ready_to_export, data.as_of)
            case PreferenceSet():
                preference = uow.get(preference_key(partner, data.client_id, data.user_id))
                if preference is None:
                    preference = uow.add(Preference(partner_id=partner, client_id=data.client_id,
                                                    user_id=data.user_id))
                preference.set(data.email_enabled, data.frequency.value, inbound.envelope.time)
            case ReminderRequested():
                # The apply span's context while tracing, else the one the event came with.
                envelope = inbound.envelope
                trace = tracing.trace_fields() or {k: v for k in ("traceparent", "tracestate")
                                                   if (v := getattr(envelope, k)) is not None}
                self._remind(uow, partner, data, envelope.time, trace)
            case ClientVerificationCompleted() | InvitationAccepted():
                self._file(uow, partner, data.client_id).change_status("connected")
            case ClientVerificationFailed():
                self._file(uow, partner, data.client_id).change_status("verification_failed")
            case EmailSent() | EmailFailed():
                pass  # our own outcomes
            case _:
                raise Rejected(f"{inbound.type} is not handled by the notifier")

    def _remind(self, uow: UnitOfWork, partner: str, data: ReminderRequested, at: datetime,
                trace: dict[str, str]) -> None:
        if uow.get(reminder_key(partner, data.reminder_id)) is not None:
            raise Rejected(f"reminder {data.reminder_id} was already processed")
        uow.add(Reminder(partner_id=partner, reminder_id=data.reminder_id, client_id=data.client_id,
                         requested_by=data.requested_by, tasks=[t.value for t in data.tasks],
                         comment=data.comment, recipients=[], requested_at=at, trace=trace or None))

    def dispatch(self, reminder: Reminder, now: datetime | None = None, *, mail_from: str) -> list[Delivery]:
        """`_dispatch` in a span of the reminder's trace when the notifier traces."""
        tracer = tracing.tracer(self.name)
        if tracer is None:
            return self._dispatch(reminder, now, mail_from=mail_from)
        trace = getattr(reminder, "trace", None) or {}  # None on reminders recorded before tracing
        parent = tracing.context_of(trace.get("traceparent"), trace.get("tracestate"))
        with tracer.start_as_current_span("dispatch reminder", context=tracing.span_context(parent),
                                          attributes={"portal.reminder_id": reminder.reminder_id}) as span:
            deliveries = self._dispatch(reminder, now, mail_from=mail_from)
            span.set_attribute("portal.recipients", len(deliveries))
            return deliveries

    def _dispatch(self, reminder: Reminder, now: datetime | None = None, *, mail_from: str) -> list[Delivery]:
        """Choose the reminder's recipients now and make their deliveries (not saved here),
        with Message-IDs in MAIL_FROM's domain.

        The reminder becomes dispatched, or dropped with the reason when it cannot be sent:
        also when it was requested more than REMINDER_MAX_AGE before `now`. Only a store
        rebuilt from the topics (or an outage that long) sees such a reminder, and an admin's
        ad-hoc reminder sent days later, again, would do more harm than good.
        """
        partner = reminder.partner_id
        now = now or datetime.now(UTC)
        if reminder.requested_at is not None and now - reminder.requested_at > REMINDER_MAX_AGE:
            reminder.dropped(f"requested at {reminder.requested_at.isoformat()}, more than "
                             f"{REMINDER_MAX_AGE} before it could be dispatched: not sent")
            return []
        client = self._get(client_key(partner, reminder.client_id))
        admin = self._get(member_key(partner, reminder.requested_by))
        reason = reminder_exclusion(admin, client)
        if reason is not None:
            reminder.dropped(reason)
            return []
        assert client is not None and admin is not None
        members = {user_id: self._get(member_key(partner, user_id)) for user_id in client.accountants}
        recipients = reminder_recipients(client, members)
        reminder.dispatched([m.user_id for m in recipients])
        return [
            Delivery(
                message_id=reminder_message_id(reminder.reminder_id, member.user_id, mail_from),
                kind="reminder", partner_id=partner, user_id=member.user_id, client_ids=[client.client_id],
                content={
                    "recipient": recipient_of(member),
                    "sender_name": admin.name,
                    "reply_to": admin.email,
                    "client": figures_of(client),
                    "tasks": list(reminder.tasks),
                    "comment": reminder.comment,
                    "reminder_id": reminder.reminder_id,
                    # Where the email's send span goes: this dispatch's, or the request's.
                    **({"trace": trace} if (trace := tracing.trace_fields() or getattr(reminder, "trace", None))
                       else {}),
                },
            )
            for member in recipients
        ]

    def _get(self, aggregate_id: UUID) -> Any | None:
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    @staticmethod
    def _member(uow: UnitOfWork, partner: str, user_id: str) -> Member:
        member = uow.get(member_key(partner, user_id))
        if member is None:
            raise Rejected(f"{user_id} was never a member of {partner}")
        return member

    @staticmethod
    def _file(uow: UnitOfWork, partner: str, client_id: str) -> ClientFile:
        client = uow.get(client_key(partner, client_id))
        if client is None:
            client = uow.add(ClientFile(partner_id=partner, client_id=client_id))
        return client


def recipient_of(member: Member) -> dict[str, str]:
    return {"user_id": member.user_id, "email": member.email, "name": member.name, "locale": member.locale}


def figures_of(client: ClientFile) -> dict[str, Any]:
    wallet = None
    if client.wallet_amount is not None:
        wallet = {"amount": client.wallet_amount, "currency": client.wallet_currency}
    return {"client_id": client.client_id, "name": client.name, "wallet_balance": wallet,
            "missing_receipts": client.missing_receipts, "ready_to_export": client.ready_to_export}
