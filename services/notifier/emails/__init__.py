"""Email rendering for the notifier: reminders and digests, in English and French."""

from services.notifier.emails.i18n import EmailLocale, resolve_locale
from services.notifier.emails.models import ClientFigures, Money, Recipient, Task
from services.notifier.emails.render import (
    digest_message_id,
    reminder_message_id,
    render_digest,
    render_reminder,
)

__all__ = [
    "ClientFigures",
    "EmailLocale",
    "Money",
    "Recipient",
    "Task",
    "digest_message_id",
    "reminder_message_id",
    "render_digest",
    "render_reminder",
    "resolve_locale",
]
