"""Reminder history: what the reminder command records beside its outbox message, and how the
notifier's delivery outcomes (`portal.notification-deliveries`) are applied to it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from contracts.events import EmailFailed, EmailSent
from events.inbox import UnitOfWork
from services.client_directory.domain.model import Rejected
from services.client_directory.domain.reminders import (
    FAILED,
    SENT,
    Reminder,
    ReminderEmail,
    digest_of_message_id,
    email_key,
    mail_digest,
    reminder_key,
)


def reminder_log(partner_id: str, reminder_id: str, client_id: str, accountants: list[str], requested_by: str,
                 tasks: list[str], comment: str, at: datetime) -> list[Any]:
    """The reminder and one pending email per accountant assigned now, saved with the command."""
    reminder = Reminder(partner_id=partner_id, reminder_id=reminder_id, client_id=client_id,
                        requested_by=requested_by, requested_at=at, tasks=tasks, comment=comment,
                        recipients=accountants)
    emails = [ReminderEmail(partner_id=partner_id, reminder_id=reminder_id, client_id=client_id, user_id=user_id)
              for user_id in dict.fromkeys(accountants)]
    return [reminder, *emails]


def outcome_keys(partner_id: str, data: EmailSent | EmailFailed) -> list[Any]:
    """The aggregate an outcome settles, for the inbox's batch read (empty for a digest)."""
    digest = _digest(data)
    return [email_key(partner_id, digest)] if digest else []


def record_outcome(uow: UnitOfWork, partner_id: str, data: EmailSent | EmailFailed, at: datetime) -> None:
    """Settle the recipient's email of the reminder it is about; a digest changes nothing here.

    The reminder is found by `reminder_id` when the event carries it, otherwise by the part of
    the Message-ID the notifier derives from (reminder, recipient): both give the same key."""
    if data.kind != "reminder":
        return
    digest = _digest(data)
    if digest is None:
        raise Rejected(f"{data.message_id} is not the Message-ID of a reminder")
    email: ReminderEmail | None = uow.get(email_key(partner_id, digest))
    if email is None:
        email = _unexpected(uow, partner_id, data)
    if isinstance(data, EmailSent):
        email.settle(SENT, data.sent_at, data.message_id)
    else:
        reason = f"{data.code} {data.reason}" if data.code is not None else data.reason
        email.settle(FAILED, at, data.message_id, reason[:1000])


def _unexpected(uow: UnitOfWork, partner_id: str, data: EmailSent | EmailFailed) -> ReminderEmail:
    """An outcome for someone who was not pending (assigned after the request): kept as an email
    of the reminder, when the event names it and it is one of ours."""
    reminder_id = data.reminder_id
    reminder: Reminder | None = uow.get(reminder_key(partner_id, reminder_id)) if reminder_id else None
    if reminder is None:
        raise Rejected(f"{data.message_id} is not about a reminder requested here")
    email: ReminderEmail = uow.add(ReminderEmail(partner_id=partner_id, reminder_id=reminder.reminder_id,
                                                 client_id=reminder.client_id, user_id=data.user_id))
    return email


def _digest(data: EmailSent | EmailFailed) -> str | None:
    reminder_id = data.reminder_id
    if reminder_id:
        return mail_digest(reminder_id, data.user_id)
    return digest_of_message_id(data.message_id)
