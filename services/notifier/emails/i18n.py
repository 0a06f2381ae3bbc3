"""Locales and the message catalogue of the notifier's emails.

French wording follows the partner-portal help article (seeds/000_…): "reçus manquants",
"dépenses prêtes à être exportées", "solde du portefeuille", "Aller vers le client",
"Afficher les détails", "Notifier les comptables". French typography puts a no-break
space before ":" (written as \u00a0 below).

Formats follow one rule per language, the Clients page's (docs/PORTAL.md, "Formats"): `en` is
British English (en-GB), `fr` is fr-FR, whatever region a member's locale names, so an email
and the page show a figure with the same characters. In French, "de", "le" and "que" right
before a name are elided when the name calls for it (`fill`): "d'Ærø Bryggeri", "de Société
Générale".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from babel import Locale

__all__ = ["CATALOG", "DEFAULT_LANGUAGE", "FORMATTING", "SUPPORTED_LANGUAGES", "EmailLocale", "fill",
           "resolve_locale", "starts_with_vowel_sound"]

DEFAULT_LANGUAGE: Final = "en"
# The page's rule per language (docs/PORTAL.md "Formats"): CLDR data of these locales.
FORMATTING: Final = {"en": "en_GB", "fr": "fr_FR"}

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
        "reminder.subject": "Rappel\u00a0: tâches en suspens de {client}",
        "reminder.intro": (
            "{sender} vous a envoyé un rappel concernant les tâches en suspens de {client}."
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

# Names starting with an aspirated h keep the full word ("de Hachette", "de Hollande"): the
# usual ones, the same list as the page's PORTAL_FORMATS (static/i18n.js).
_ASPIRATED_H = re.compile(
    r"^h(ache|aie|all|alte|amac|ameau|anche|andicap|angar|ant|arcel|ardi|areng|aricot|arpe|asard|âte|aut|"
    r"avre|éris|éros|être|ibou|iérarch|ockey|olland|omard|onte|ors|otte|oublon|ousse|uit|url|utte)")
_VOWEL = re.compile(r"^[aeiouyæœøå]")
_MUTE_H = re.compile(r"^h[aeiouyæœøå]")
# A "de"/"le"/"que" right before a {placeholder}: where French elides.
_BEFORE_NAME = re.compile(r"\b(de|le|que|De|Le|Que) \{(\w+)\}")
_ELIDED = {"de": "d'", "le": "l'", "que": "qu'"}


def starts_with_vowel_sound(name: str) -> bool:
    """Whether French elides before `name`: a vowel (accented or not, Æ, Œ, Ø, Å, y) or a
    mute h ("Hôtel du Lac"), not an aspirated one ("Hachette")."""
    word = name.strip().lower()
    bare = "".join(ch for ch in unicodedata.normalize("NFD", word) if not unicodedata.combining(ch))
    if _VOWEL.match(bare):
        return True
    return bool(_MUTE_H.match(bare)) and not _ASPIRATED_H.match(word)


def fill(language: str, template: str, values: Mapping[str, object]) -> str:
    """`template.format(**values)`; in French, "de {client}" with client "Ærø Bryggeri" gives
    "d'Ærø Bryggeri" (straight apostrophe, as the help article writes it)."""
    if language == "fr":
        def elide(match: re.Match[str]) -> str:
            word, name = match.group(1), match.group(2)
            if not starts_with_vowel_sound(str(values.get(name, ""))):
                return match.group(0)
            short = _ELIDED[word.lower()]
            return (short.capitalize() if word[0].isupper() else short) + "{" + name + "}"

        template = _BEFORE_NAME.sub(elide, template)
    return template.format(**values)


@dataclass(frozen=True)
class EmailLocale:
    """`language` picks the texts; `formatting` (possibly regional, e.g. fr_CA or en_GB)
    formats amounts, numbers and dates."""

    language: str
    formatting: Locale

    def text(self, key: str, /, **values: object) -> str:
        return fill(self.language, CATALOG[self.language][key], values)


@lru_cache(maxsize=256)
def resolve_locale(tag: str | None) -> EmailLocale:
    """Map a BCP 47 tag to a supported language, falling back to English (once per tag: the
    answer never changes, and `Locale.parse` costs tens of microseconds each time).

    `fr-CA` → French texts with the page's French formats (fr-FR); `en-US` → English texts with
    British formats, as the page shows them; `de-DE` → English texts and formats (German number
    formats inside English sentences would read oddly).
    """
    normalized = (tag or "").strip().replace("_", "-")
    language = normalized.split("-", 1)[0].lower()
    if language not in SUPPORTED_LANGUAGES:
        language = DEFAULT_LANGUAGE
    return EmailLocale(language, Locale.parse(FORMATTING[language]))
