"""Render the notifier's emails (ad-hoc reminders and scheduled digests).

Each function returns a ready-to-send multipart/alternative `EmailMessage` (text, then
HTML). Texts come from Jinja2 templates under `templates/`, autoescaped for HTML so
client names and comments cannot inject markup. The `Message-ID` is derived from what
the email is, so a resend after a crash carries the same id and receivers can dedupe.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime, parseaddr
from functools import cache
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, urlsplit

import jinja2
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from markupsafe import Markup, escape

from services.notifier.domain.schedule import ZONE
from services.notifier.emails.i18n import EmailLocale, resolve_locale
from services.notifier.emails.models import ClientFigures, Money, Recipient, Task

__all__ = [
    "digest_message_id",
    "reminder_message_id",
    "render_digest",
    "render_reminder",
    "render_unsubscribe_page",
]

TEMPLATES_DIR = Path(__file__).parent / "templates"

# Fixed namespace: Message-IDs must stay the same across processes and releases.
_MESSAGE_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:partner-portal:notifier:email")


# ------------------------------------------------------------------------ identifiers


def _mail_from_parts(mail_from: str) -> tuple[str, str, str]:
    """(display name, address, domain) of MAIL_FROM, e.g. `Pleo <noreply@pleo.io>`."""
    name, address = parseaddr(mail_from)
    local, _, domain = address.rpartition("@")
    if not local or not domain or ("." not in domain and domain != "localhost"):
        raise ValueError(f"MAIL_FROM is not a usable email address: {mail_from!r}")
    return name, address, domain.lower()


def _message_id(kind: str, key: Sequence[str], mail_from: str) -> str:
    _, _, domain = _mail_from_parts(mail_from)
    # JSON keeps the parts unambiguous ("a:b","c" and "a","b:c" differ).
    name = json.dumps([kind, *key], separators=(",", ":"))
    digest = uuid.uuid5(_MESSAGE_ID_NAMESPACE, name).hex
    return f"<{kind}-{digest}@{domain.encode('idna').decode('ascii')}>"


def reminder_message_id(reminder_id: str, user_id: str, mail_from: str) -> str:
    """`<reminder-{uuid5 hex}@{MAIL_FROM domain}>`, from (reminder id, recipient)."""
    return _message_id("reminder", (reminder_id, user_id), mail_from)


def digest_message_id(user_id: str, due_at: datetime, mail_from: str, *, partner_id: str | None = None) -> str:
    """`<digest-{uuid5 hex}@{MAIL_FROM domain}>`, from (recipient, due time).

    The due time is taken as a UTC instant, so the same slot expressed in another zone
    gives the same id. Give `partner_id` when one user may belong to several firms: each
    firm's digest is another email and needs its own id.
    """
    if due_at.tzinfo is None or due_at.utcoffset() is None:
        raise ValueError("due_at must be timezone-aware")
    instant = due_at.astimezone(UTC).isoformat(timespec="microseconds")
    key = (user_id, instant) if partner_id is None else (partner_id, user_id, instant)
    return _message_id("digest", key, mail_from)


# ---------------------------------------------------------------------------- helpers


def _one_line(text: str) -> str:
    # Header values must not carry CR/LF (header injection) and read better collapsed.
    return " ".join(text.split())


def _portal_url(base_url: str, *path: str) -> str:
    base = base_url.rstrip("/")
    scheme = urlsplit(base).scheme
    if scheme not in ("http", "https"):
        raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
    return "/".join([base, *(quote(part, safe="") for part in path)])


class _VerbatimHeader(UnstructuredHeader):
    """Written as is, never folded: the default policy would turn a URL longer than a line
    into RFC 2047 encoded words, which mail clients do not decode in List-Unsubscribe."""

    def fold(self, *, policy: Any) -> str:
        name: str = getattr(self, "name")  # noqa: B009 - set by the header factory, unknown to typeshed
        return f"{name}: {self}{policy.linesep}"


_HEADERS = HeaderRegistry()
_HEADERS.map_to_type("list-unsubscribe", cast(type[BaseHeader], _VerbatimHeader))
_POLICY: Any = default_policy.clone(header_factory=_HEADERS)
# RFC 5322 caps a line at 998 characters; "List-Unsubscribe: <" and ">" take 21.
MAX_UNSUBSCRIBE_URL = 960


def _checked_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if any(ch.isspace() or ch in "<>\"'" for ch in url):
        raise ValueError(f"URL must be percent-encoded: {url!r}")
    return url


def _nl2br(value: str) -> Markup:
    """Escape, then keep the line breaks of user text (comments) in HTML."""
    return Markup("<br>\n").join(escape(line) for line in str(value).splitlines())


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["nl2br"] = _nl2br
    return env


def _render(name: str, context: Mapping[str, Any]) -> str:
    return _environment().get_template(name).render(context)


@dataclass(frozen=True)
class _Line:
    label: str
    value: str


@dataclass(frozen=True)
class _ClientView:
    name: str
    url: str
    lines: tuple[_Line, ...]
    unsubscribe_url: str | None = None


class _Formatter:
    def __init__(self, locale: EmailLocale) -> None:
        self.locale = locale

    def money(self, money: Money | None) -> str:
        if money is None:
            return self.locale.text("not_available")
        return format_currency(money.amount, money.currency, locale=self.locale.formatting)

    def count(self, value: int) -> str:
        return format_decimal(value, locale=self.locale.formatting)

    def date(self, at: datetime) -> str:
        # Slots are Copenhagen wall times; show the date as it is there.
        return format_date(at.astimezone(ZONE).date(), format="long", locale=self.locale.formatting)

    def task_line(self, task: Task, client: ClientFigures) -> _Line:
        value = {
            Task.MISSING_RECEIPTS: lambda: self.count(client.missing_receipts),
            Task.READY_TO_EXPORT: lambda: self.count(client.ready_to_export),
            Task.WALLET_BALANCE: lambda: self.money(client.wallet_balance),
        }[task]()
        return _Line(self.locale.text(f"task.{task.value}"), value)


def _normalize_tasks(tasks: Iterable[str | Task]) -> tuple[Task, ...]:
    requested = set()
    for task in tasks:
        try:
            requested.add(Task(task))
        except ValueError:
            raise ValueError(f"unknown reminder task: {task!r}") from None
    # Canonical order and no duplicates, so the same reminder always reads the same.
    return tuple(task for task in Task if task in requested)


def _greeting(locale: EmailLocale, recipient: Recipient) -> str:
    name = _one_line(recipient.name)
    return locale.text("greeting", name=name) if name else locale.text("greeting_anonymous")


def _assemble(
    *,
    locale: EmailLocale,
    subject: str,
    from_: Address,
    recipient: Recipient,
    message_id: str,
    sent_at: datetime | None,
    text: str,
    html: str,
) -> EmailMessage:
    message = EmailMessage(policy=_POLICY)
    message["Subject"] = _one_line(subject)
    message["From"] = from_
    message["To"] = Address(display_name=_one_line(recipient.name), addr_spec=recipient.email)
    message["Date"] = format_datetime(sent_at or datetime.now(UTC))
    message["Message-ID"] = message_id
    # RFC 3834: stops vacation responders from answering the notifier.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text, subtype="plain", charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    # After set_content, which drops every Content-* header already present.
    message["Content-Language"] = locale.language
    return message


# ----------------------------------------------------------------------------- emails


def render_reminder(
    *,
    recipient: Recipient,
    sender_name: str,
    client: ClientFigures,
    tasks: Iterable[str | Task],
    comment: str,
    reminder_id: str,
    mail_from: str,
    base_url: str,
    reply_to: str | None = None,
    sent_at: datetime | None = None,
) -> EmailMessage:
    """The ad-hoc reminder an admin sends to one accountant assigned to `client`.

    The From header keeps the MAIL_FROM address (so SPF/DKIM hold) with the admin's name
    as display name; pass the admin's address as `reply_to` to route answers to them.
    """
    locale = resolve_locale(recipient.locale)
    fmt = _Formatter(locale)
    sender = _one_line(sender_name)
    client_name = _one_line(client.name)
    _, from_address, _ = _mail_from_parts(mail_from)
    context = {
        "t": locale.text,
        "lang": locale.language,
        "greeting": _greeting(locale, recipient),
        "sender": sender,
        "client_name": client_name,
        "client_url": _portal_url(base_url, "clients", client.client_id),
        "lines": [fmt.task_line(task, client) for task in _normalize_tasks(tasks)],
        "comment": comment.strip(),
    }
    message = _assemble(
        locale=locale,
        subject=locale.text("reminder.subject", client=client_name),
        from_=Address(display_name=sender, addr_spec=from_address),
        recipient=recipient,
        message_id=reminder_message_id(reminder_id, recipient.user_id, mail_from),
        sent_at=sent_at,
        text=_render("reminder.txt", context),
        html=_render("reminder.html", context),
    )
    if reply_to:
        message["Reply-To"] = reply_to
    return message


def render_digest(
    *,
    recipient: Recipient,
    clients: Sequence[ClientFigures],
    due_at: datetime,
    mail_from: str,
    base_url: str,
    unsubscribe_url: str,
    client_unsubscribe_urls: Mapping[str, str] | None = None,
    sent_at: datetime | None = None,
    partner_id: str | None = None,
) -> EmailMessage:
    """One digest for one recipient and due time, covering every client given.

    `unsubscribe_url` is the RFC 8058 one-click target (it receives a POST with
    `List-Unsubscribe=One-Click`) and stops this recipient's digests;
    `client_unsubscribe_urls` optionally adds a per-client link in the body.
    """
    if not clients:
        raise ValueError("a digest needs at least one client")
    if due_at.tzinfo is None or due_at.utcoffset() is None:
        raise ValueError("due_at must be timezone-aware")
    locale = resolve_locale(recipient.locale)
    fmt = _Formatter(locale)
    per_client = client_unsubscribe_urls or {}
    unsubscribe = _checked_url(unsubscribe_url)
    if len(unsubscribe) > MAX_UNSUBSCRIBE_URL:
        raise ValueError(f"the unsubscribe URL is longer than {MAX_UNSUBSCRIBE_URL} characters")
    date = fmt.date(due_at)
    # Stable order whatever order the caller gathered the clients in.
    ordered = sorted(clients, key=lambda c: (_one_line(c.name).casefold(), c.client_id))
    views = [
        _ClientView(
            name=_one_line(client.name),
            url=_portal_url(base_url, "clients", client.client_id),
            lines=tuple(fmt.task_line(task, client) for task in Task),
            unsubscribe_url=(
                _checked_url(per_client[client.client_id])
                if client.client_id in per_client
                else None
            ),
        )
        for client in ordered
    ]
    _, from_address, _ = _mail_from_parts(mail_from)
    from_name, _ = parseaddr(mail_from)
    context = {
        "t": locale.text,
        "lang": locale.language,
        "greeting": _greeting(locale, recipient),
        "date": date,
        "clients": views,
        "portal_url": _portal_url(base_url, "clients"),
        "unsubscribe_url": unsubscribe,
    }
    message = _assemble(
        locale=locale,
        subject=locale.text("digest.subject", date=date),
        from_=Address(display_name=_one_line(from_name), addr_spec=from_address),
        recipient=recipient,
        message_id=digest_message_id(recipient.user_id, due_at, mail_from, partner_id=partner_id),
        sent_at=sent_at,
        text=_render("digest.txt", context),
        html=_render("digest.html", context),
    )
    message["List-Unsubscribe"] = f"<{unsubscribe}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return message


def render_unsubscribe_page(*, locale_tag: str | None, state: str, clients: Sequence[str] = ()) -> str:
    """The small HTML page of the one-click unsubscribe endpoint.

    `state`: "confirm" (a form that POSTs: a GET, which mail clients prefetch, must never
    unsubscribe), "done", or "invalid".
    """
    if state not in ("confirm", "done", "invalid"):
        raise ValueError(f"unknown page state {state!r}")
    locale = resolve_locale(locale_tag)
    names = ", ".join(_one_line(name) for name in clients)
    return _render("unsubscribe.html", {"t": locale.text, "lang": locale.language, "state": state,
                                        "clients": names})
