"""Locales and the message catalogue of the notifier's emails.

French wording follows the partner-portal help article (seeds/000_…): "reçus manquants",
"dépenses prêtes à être exportées", "solde du portefeuille", "Aller vers le client",
"Afficher les détails", "Notifier les comptables". French typography puts a no-break
space before ":" (written as \u00a0 below).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from babel import Locale, UnknownLocaleError

__all__ = ["CATALOG", "DEFAULT_LANGUAGE", "SUPPORTED_LANGUAGES", "EmailLocale", "resolve_locale"]

DEFAULT_LANGUAGE: Final = "en"

CATALOG: Final[dict[str, dict[str, str]]] = {
    "en": {
        "greeting": "Hello {name},",
        "greeting_anonymous": "Hello,",
        "label_value": "{label}: {value}",
        "task.missing_receipts": "Missing receipts",
        "task.ready_to_export": "Expenses ready to export",
        "task.wallet_balance": "Wallet balance",
        "not_available": "not available",
        "go_to_client": "Go to client",
        "open_portal": "Open the partner portal",
        "reminder.subject": "Reminder: outstanding tasks for {client}",
        "reminder.intro": "{sender} sent you a reminder about outstanding tasks for {client}.",
        "reminder.tasks_heading": "Tasks to look at:",
        "reminder.comment_heading": "Comment from {sender}:",
        "reminder.sent_by": "Sent by {sender} via Notify accountants in the partner portal.",
        "reminder.why": (
            "You receive this email because you are an accountant assigned to {client}."
        ),
        "digest.subject": "Your client updates for {date}",
        "digest.intro": "Here is the latest on your clients as of {date}.",
        "digest.why": (
            "You receive this email because you turned on email notifications for these "
            'clients. You can change this under "View details" on the "Clients" page.'
        ),
        "digest.unsubscribe": "Unsubscribe from these emails",
        "digest.unsubscribe_client": "Stop emails about this client",
        "unsubscribe.title": "Email notifications",
        "unsubscribe.confirm": "Stop the digest emails about {clients}?",
        "unsubscribe.button": "Unsubscribe",
        "unsubscribe.done": "You will no longer receive digest emails about {clients}.",
        "unsubscribe.again": (
            'You can turn them on again under "View details" on the "Clients" page of the '
            "partner portal."
        ),
        "unsubscribe.invalid": "This link is not valid.",
        "unsubscribe.outdated": (
            "Your email settings for {clients} changed after this email was sent, so this link no longer "
            "changes them. Use the link in your latest email, or your settings in the portal."
        ),
    },
    "fr": {
        "greeting": "Bonjour {name},",
        "greeting_anonymous": "Bonjour,",
        "label_value": "{label}\u00a0: {value}",
        "task.missing_receipts": "Reçus manquants",
        "task.ready_to_export": "Dépenses prêtes à être exportées",
        "task.wallet_balance": "Solde du portefeuille",
        "not_available": "non disponible",
        "go_to_client": "Aller vers le client",
        "open_portal": "Ouvrir le portail des partenaires",
        "reminder.subject": "Rappel\u00a0: tâches en suspens pour {client}",
        "reminder.intro": (
            "{sender} vous a envoyé un rappel concernant les tâches en suspens pour {client}."
        ),
        "reminder.tasks_heading": "Tâches concernées\u00a0:",
        "reminder.comment_heading": "Commentaire ajouté par {sender}\u00a0:",
        "reminder.sent_by": (
            "Envoyé par {sender} via «\u00a0Notifier les comptables\u00a0» "
            "dans le portail des partenaires."
        ),
        "reminder.why": (
            "Vous recevez cet e-mail car vous êtes un comptable affecté au client {client}."
        ),
        "digest.subject": "Vos mises à jour clients du {date}",
        "digest.intro": "Voici les dernières informations sur vos clients au {date}.",
        "digest.why": (
            "Vous recevez cet e-mail car vous avez activé les notifications par e-mail pour "
            "ces clients. Vous pouvez modifier ce choix via "
            "«\u00a0Afficher les détails\u00a0» sur la page «\u00a0Clients\u00a0»."
        ),
        "digest.unsubscribe": "Se désabonner de ces e-mails",
        "digest.unsubscribe_client": "Ne plus recevoir d'e-mails pour ce client",
        "unsubscribe.title": "Notifications par e-mail",
        "unsubscribe.confirm": "Ne plus recevoir les e-mails récapitulatifs concernant {clients}\u00a0?",
        "unsubscribe.button": "Se désabonner",
        "unsubscribe.done": "Vous ne recevrez plus d'e-mails récapitulatifs concernant {clients}.",
        "unsubscribe.again": (
            "Vous pouvez les réactiver via «\u00a0Afficher les détails\u00a0» sur la page "
            "«\u00a0Clients\u00a0» du portail des partenaires."
        ),
        "unsubscribe.invalid": "Ce lien n'est pas valide.",
        "unsubscribe.outdated": (
            "Vos réglages d'e-mails pour {clients} ont changé après l'envoi de cet e-mail\u00a0: ce lien ne les "
            "modifie plus. Utilisez le lien de votre dernier e-mail, ou vos réglages dans le portail."
        ),
    },
}

SUPPORTED_LANGUAGES: Final = frozenset(CATALOG)


@dataclass(frozen=True)
class EmailLocale:
    """`language` picks the texts; `formatting` (possibly regional, e.g. fr_CA or en_GB)
    formats amounts, numbers and dates."""

    language: str
    formatting: Locale

    def text(self, key: str, /, **values: object) -> str:
        return CATALOG[self.language][key].format(**values)


@lru_cache(maxsize=256)
def resolve_locale(tag: str | None) -> EmailLocale:
    """Map a BCP 47 tag to a supported language, falling back to English (once per tag: the
    answer never changes, and `Locale.parse` costs tens of microseconds each time).

    `fr-CA` → French texts with Canadian French formatting; `de-DE` → English texts and
    English formatting (German number formats inside English sentences would read oddly).
    """
    normalized = (tag or "").strip().replace("_", "-")
    language = normalized.split("-", 1)[0].lower()
    if language not in SUPPORTED_LANGUAGES:
        return EmailLocale(DEFAULT_LANGUAGE, Locale.parse(DEFAULT_LANGUAGE))
    try:
        formatting = Locale.parse(normalized, sep="-")
    except (ValueError, TypeError, UnknownLocaleError):
        # Tags Babel does not know (private-use or extension subtags, unknown regions).
        formatting = Locale.parse(language)
    if formatting.language != language:
        formatting = Locale.parse(language)
    return EmailLocale(language, formatting)
