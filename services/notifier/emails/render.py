"""Render the notifier's emails (ad-hoc reminders and scheduled digests).

`compose_*` return a `WireEmail`: a multipart/alternative (text, then HTML) serialized once,
with its envelope, which is what the sender sends (emails/mime.py says why it does not go
through `EmailMessage`); `render_*` return the same bytes parsed back as an `EmailMessage`
(previews, tests). Texts come from Jinja2 templates under `templates/`, compiled once,
autoescaped for HTML so client names and comments cannot inject markup. Whatever repeats from
one email to the next (locales, formatted counts and dates, the From header) is computed once
per process. The `Message-ID` is derived from what the email is, so a resend after a crash
carries the same id and receivers can dedupe.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from markupsafe import Markup, escape

from services.notifier.domain.schedule import ZONE
from services.notifier.emails.i18n import EmailLocale, resolve_locale
from services.notifier.emails.mime import (
    WireEmail,
    address_header,
    build_message,
    header_line,
    unstructured_header,
)
from services.notifier.emails.models import ClientFigures, Money, Recipient, Task

__all__ = [
    "WireEmail",
    "compose_digest",
    "compose_reminder",
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


@lru_cache(maxsize=16)
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


@lru_cache(maxsize=64)
def _portal_base(base_url: str) -> str:
    base = base_url.rstrip("/")
    scheme = urlsplit(base).scheme
    if scheme not in ("http", "https"):
        raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
    return base


def _portal_url(base_url: str, *path: str) -> str:
    return "/".join([_portal_base(base_url), *(quote(part, safe="") for part in path)])


def _client_url(base_url: str, client_id: str) -> str:
    # The page's Go to client opens the same page: the platform's client account.
    return _portal_url(base_url, "clients", client_id, "account")


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
        auto_reload=False,  # templates ship with the code: no stat() per email
    )
    env.filters["nl2br"] = _nl2br
    return env


@cache
def _template(name: str) -> jinja2.Template:
    return _environment().get_template(name)  # compiled once per process


def _render(name: str, context: Mapping[str, Any]) -> str:
    return _template(name).render(context)


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


def _code_pattern(locale: Locale) -> str:
    """The locale's currency pattern with the ISO 4217 code ("¤¤") for the symbol, a no-break
    space between code and number: "DKK 249,055.88", "249 055,88 DKK" (docs/PORTAL.md, "Formats":
    a firm's clients hold EUR, DKK, SEK, GBP and USD side by side; "kr" or "$" would be ambiguous)."""
    standard = locale.currency_formats["standard"]
    assert standard is not None, f"no currency format in {locale}"
    positive = standard.pattern.split(";")[0]
    pattern = re.sub("\u00a4+", "\u00a4\u00a4", positive)
    pattern = re.sub("\u00a4\u00a4(?=[#0,.])", "\u00a4\u00a4\u00a0", pattern)
    return re.sub("(?<=[#0,.])\u00a4\u00a4", "\u00a0\u00a4\u00a4", pattern)


class _Formatter:
    """Babel formatting in one locale. One per locale for the process (`_formatter`): counts,
    dates and labels repeat from one email to the next, so they are formatted once."""

    def __init__(self, locale: EmailLocale) -> None:
        self.locale = locale
        self.not_available = locale.text("not_available")
        self.labels = {task: locale.text(f"task.{task.value}") for task in Task}
        self.money_pattern = _code_pattern(locale.formatting)
        self.count = lru_cache(maxsize=1024)(self._count)
        self.date = lru_cache(maxsize=64)(self._date)

    def money(self, money: Money | None) -> str:
        if money is None:
            return self.not_available
        return format_currency(money.amount, money.currency, format=self.money_pattern,
                               locale=self.locale.formatting)

    def _count(self, value: int) -> str:
        return format_decimal(value, locale=self.locale.formatting)

    def _date(self, at: datetime) -> str:
        # Slots are Copenhagen wall times; show the date as it is there.
        return format_date(at.astimezone(ZONE).date(), format="long", locale=self.locale.formatting)

    def task_line(self, task: Task, client: ClientFigures) -> _Line:
        if task is Task.MISSING_RECEIPTS:
            value = self.count(client.missing_receipts)
        elif task is Task.READY_TO_EXPORT:
            value = self.count(client.ready_to_export)
        else:
            value = self.money(client.wallet_balance)
        return _Line(self.labels[task], value)


@lru_cache(maxsize=64)
def _formatter(locale: EmailLocale) -> _Formatter:
    return _Formatter(locale)


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


@lru_cache(maxsize=16)
def _from_header(display_name: str, address: str) -> str:
    return address_header("From", display_name, address)


def _assemble(
    *,
    locale: EmailLocale,
    subject: str,
    from_header: str,
    from_address: str,
    recipient: Recipient,
    message_id: str,
    sent_at: datetime | None,
    text: str,
    html: str,
    extra: Sequence[str] = (),
) -> WireEmail:
    headers = [
        unstructured_header("Subject", _one_line(subject)),
        from_header,
        address_header("To", _one_line(recipient.name), recipient.email),
        header_line("Date", format_datetime(sent_at or datetime.now(UTC))),
        header_line("Message-ID", message_id),
        # RFC 3834: stops vacation responders from answering the notifier.
        "Auto-Submitted: auto-generated",
        header_line("Content-Language", locale.language),
        *extra,
    ]
    return WireEmail(
        message_id=message_id,
        envelope_from=from_address,
        envelope_to=(recipient.email,),
        data=build_message(headers, text, html),
        # An address that is not ASCII can only be written, and sent, with SMTPUTF8 (RFC 6531/6532).
        smtputf8=not (from_address.isascii() and recipient.email.isascii()
                      and all(line.isascii() for line in extra)),
    )


# ----------------------------------------------------------------------------- emails


def compose_reminder(
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
    message_id: str | None = None,
) -> WireEmail:
    """The ad-hoc reminder an admin sends to one accountant assigned to `client`, ready to send.

    The From header keeps the MAIL_FROM address (so SPF/DKIM hold) with the admin's name
    as display name; pass the admin's address as `reply_to` to route answers to them.
    `message_id` defaults to the one derived from (reminder, recipient).
    """
    locale = resolve_locale(recipient.locale)
    fmt = _formatter(locale)
    sender = _one_line(sender_name)
    client_name = _one_line(client.name)
    _, from_address, _ = _mail_from_parts(mail_from)
    context = {
        "t": locale.text,
        "lang": locale.language,
        "greeting": _greeting(locale, recipient),
        "sender": sender,
        "client_name": client_name,
        "client_url": _client_url(base_url, client.client_id),
        "lines": [fmt.task_line(task, client) for task in _normalize_tasks(tasks)],
        "comment": comment.strip(),
    }
    return _assemble(
        locale=locale,
        subject=locale.text("reminder.subject", client=client_name),
        from_header=address_header("From", sender, from_address),
        from_address=from_address,
        recipient=recipient,
        message_id=message_id or reminder_message_id(reminder_id, recipient.user_id, mail_from),
        sent_at=sent_at,
        text=_render("reminder.txt", context),
        html=_render("reminder.html", context),
        extra=[address_header("Reply-To", "", reply_to)] if reply_to else [],
    )


def _client_views(clients: Sequence[ClientFigures], fmt: _Formatter, base_url: str,
                  per_client: Mapping[str, str]) -> list[_ClientView]:
    # Stable order whatever order the caller gathered the clients in.
    ordered = sorted(clients, key=lambda c: (_one_line(c.name).casefold(), c.client_id))
    return [
        _ClientView(
            name=_one_line(client.name),
            url=_client_url(base_url, client.client_id),
            lines=tuple(fmt.task_line(task, client) for task in Task),
            unsubscribe_url=_checked_url(per_client[client.client_id]) if client.client_id in per_client else None,
        )
        for client in ordered
    ]


def compose_digest(
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
    message_id: str | None = None,
) -> WireEmail:
    """One digest for one recipient and due time, covering every client given, ready to send.

    `unsubscribe_url` is the RFC 8058 one-click target (it receives a POST with
    `List-Unsubscribe=One-Click`) and stops this recipient's digests;
    `client_unsubscribe_urls` optionally adds a per-client link in the body. `message_id`
    defaults to the one derived from (firm, recipient, due time).
    """
    if not clients:
        raise ValueError("a digest needs at least one client")
    if due_at.tzinfo is None or due_at.utcoffset() is None:
        raise ValueError("due_at must be timezone-aware")
    locale = resolve_locale(recipient.locale)
    fmt = _formatter(locale)
    unsubscribe = _checked_url(unsubscribe_url)
    if len(unsubscribe) > MAX_UNSUBSCRIBE_URL:
        raise ValueError(f"the unsubscribe URL is longer than {MAX_UNSUBSCRIBE_URL} characters")
    date = fmt.date(due_at)
    views = _client_views(clients, fmt, base_url, client_unsubscribe_urls or {})
    from_name, from_address, _ = _mail_from_parts(mail_from)
    context = {
        "t": locale.text,
        "lang": locale.language,
        "greeting": _greeting(locale, recipient),
        "date": date,
        "clients": views,
        "portal_url": _portal_url(base_url, "clients"),
        "unsubscribe_url": unsubscribe,
    }
    return _assemble(
        locale=locale,
        subject=locale.text("digest.subject", date=date),
        from_header=_from_header(_one_line(from_name), from_address),
        from_address=from_address,
        recipient=recipient,
        message_id=message_id or digest_message_id(recipient.user_id, due_at, mail_from, partner_id=partner_id),
        sent_at=sent_at,
        text=_render("digest.txt", context),
        html=_render("digest.html", context),
        extra=[
            # Never folded: mail clients do not decode encoded words in List-Unsubscribe.
            header_line("List-Unsubscribe", f"<{unsubscribe}>"),
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        ],
    )


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
    """`compose_reminder` as an `EmailMessage`: the bytes that are sent, as a receiver reads them."""
    return compose_reminder(
        recipient=recipient, sender_name=sender_name, client=client, tasks=tasks, comment=comment,
        reminder_id=reminder_id, mail_from=mail_from, base_url=base_url, reply_to=reply_to, sent_at=sent_at,
    ).message()


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
    """`compose_digest` as an `EmailMessage`: the bytes that are sent, as a receiver reads them."""
    return compose_digest(
        recipient=recipient, clients=clients, due_at=due_at, mail_from=mail_from, base_url=base_url,
        unsubscribe_url=unsubscribe_url, client_unsubscribe_urls=client_unsubscribe_urls, sent_at=sent_at,
        partner_id=partner_id,
    ).message()


def render_unsubscribe_page(*, locale_tag: str | None, state: str, clients: Sequence[str] = ()) -> str:
    """The small HTML page of the one-click unsubscribe endpoint.

    `state`: "confirm" (a form that POSTs: a GET, which mail clients prefetch, must never
    unsubscribe), "done", "outdated" (every client it names was chosen again since), or "invalid".
    """
    if state not in ("confirm", "done", "outdated", "invalid"):
        raise ValueError(f"unknown page state {state!r}")
    locale = resolve_locale(locale_tag)
    names = ", ".join(_one_line(name) for name in clients)
    return _render("unsubscribe.html", {"t": locale.text, "lang": locale.language, "state": state,
                                        "clients": names})
