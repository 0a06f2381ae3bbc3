"""Email rendering: locales, figures, headers, escaping, MIME structure."""

from __future__ import annotations

import email
import email.policy
import re
import string
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import parseaddr
from html.parser import HTMLParser
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.notifier.emails import (
    ClientFigures,
    Money,
    Recipient,
    Task,
    digest_message_id,
    reminder_message_id,
    render_digest,
    render_reminder,
    resolve_locale,
)
from services.notifier.emails.i18n import CATALOG, fill
from services.notifier.emails.render import compose_digest, compose_reminder

MAIL_FROM = "Partner Portal <notifications@portal.example.com>"
BASE_URL = "https://portal.example.com/"
DUE = datetime(2026, 3, 30, 8, 0, tzinfo=UTC)  # Monday 10:00 CEST

ANNE = Recipient(user_id="u-anne", email="anne@firm.example", name="Anne Martin", locale="en")
CLAUDE = Recipient(user_id="u-claude", email="claude@firm.example", name="Claude", locale="fr")
ACME = ClientFigures(
    client_id="c-acme",
    name="Acme ApS",
    wallet_balance=Money(Decimal("1234.5"), "EUR"),
    missing_receipts=3,
    ready_to_export=1200,
)
SOCIETE = ClientFigures(
    client_id="c-sg",
    name="Société Générale",
    wallet_balance=Money(Decimal("-20"), "DKK"),
    missing_receipts=0,
    ready_to_export=7,
)


def plain(text: str) -> str:
    """Babel uses narrow and regular no-break spaces; compare on ordinary spaces."""
    return text.replace("\u202f", " ").replace("\u00a0", " ")


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return plain(text.get_content()), plain(html.get_content())


def reminder(**overrides: Any) -> EmailMessage:
    args: dict[str, Any] = {
        "recipient": ANNE,
        "sender_name": "Alice Admin",
        "client": ACME,
        "tasks": ["missing_receipts", "ready_to_export", "wallet_balance"],
        "comment": "Please look at March before Friday.",
        "reminder_id": "rem-1",
        "mail_from": MAIL_FROM,
        "base_url": BASE_URL,
    }
    args.update(overrides)
    return render_reminder(**args)


def digest(**overrides: Any) -> EmailMessage:
    args: dict[str, Any] = {
        "recipient": ANNE,
        "clients": [ACME, SOCIETE],
        "due_at": DUE,
        "mail_from": MAIL_FROM,
        "base_url": BASE_URL,
        "unsubscribe_url": "https://portal.example.com/unsubscribe/tok123",
    }
    args.update(overrides)
    return render_digest(**args)


def reparse(message: EmailMessage) -> EmailMessage:
    """What a receiver sees: the serialized bytes parsed back."""
    parsed = email.message_from_bytes(bytes(message), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


# ------------------------------------------------------------------------- structure


@pytest.mark.parametrize("build", [reminder, digest])
def test_multipart_alternative_with_text_then_html(build: Any) -> None:
    message = reparse(build())
    assert message.get_content_type() == "multipart/alternative"
    types = [part.get_content_type() for part in message.iter_parts()]
    # Text first: clients show the last alternative they understand.
    assert types == ["text/plain", "text/html"]
    for part in message.iter_parts():
        assert part.get_content_charset() == "utf-8"
    text, html = parts(message)
    assert text.strip() and "<html" in html


@pytest.mark.parametrize("build", [reminder, digest])
def test_common_headers(build: Any) -> None:
    message = reparse(build(sent_at=datetime(2026, 3, 30, 8, 0, 5, tzinfo=UTC)))
    assert message["To"].addresses[0].addr_spec == "anne@firm.example"
    assert message["To"].addresses[0].display_name == "Anne Martin"
    assert message["From"].addresses[0].addr_spec == "notifications@portal.example.com"
    assert message["Date"].datetime == datetime(2026, 3, 30, 8, 0, 5, tzinfo=UTC)
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Content-Language"] == "en"
    assert message["MIME-Version"] == "1.0"


# -------------------------------------------------------------------------- reminder


def test_reminder_in_english_names_tasks_figures_comment_and_sender() -> None:
    message = reminder()
    assert message["Subject"] == "Reminder: outstanding tasks for Acme ApS"
    text, html = parts(message)
    for body in (text, html):
        assert "Alice Admin" in body
        assert "Acme ApS" in body
        assert "Missing receipts" in body
        assert "Expenses ready to export" in body
        assert "1,200" in body
        assert "Wallet balance" in body
        assert "EUR 1,234.50" in body
        assert "Please look at March before Friday." in body
        assert "Sent by Alice Admin" in body
        assert "https://portal.example.com/clients/c-acme/account" in body
    assert "- Missing receipts: 3" in text
    assert '<a href="https://portal.example.com/clients/c-acme/account"' in html


def test_reminder_in_french_uses_the_help_article_wording() -> None:
    message = reminder(recipient=CLAUDE)
    assert plain(message["Subject"]) == "Rappel : tâches en suspens d'Acme ApS"
    assert message["Content-Language"] == "fr"
    text, html = parts(message)
    for body in (text, html):
        assert "Bonjour Claude," in body
        assert "Reçus manquants" in body
        assert "Dépenses prêtes à être exportées" in body
        assert "Solde du portefeuille" in body
        assert "1 234,50 EUR" in body
        assert "1 200" in body
        assert "Notifier les comptables" in body
        assert "Aller vers le client" in body
        assert "Envoyé par Alice Admin" in body
    assert "- Reçus manquants : 3" in text
    assert '<html lang="fr">' in html


def test_reminder_names_only_the_ticked_tasks_in_a_stable_order() -> None:
    text, html = parts(reminder(tasks=["wallet_balance", "missing_receipts", "wallet_balance"]))
    assert "Expenses ready to export" not in text
    assert "Expenses ready to export" not in html
    assert text.index("Missing receipts") < text.index("Wallet balance")
    assert text.count("Wallet balance") == 1
    assert parts(reminder(tasks=[Task.WALLET_BALANCE, Task.MISSING_RECEIPTS]))[0] == text


def test_reminder_unknown_task_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown reminder task"):
        reminder(tasks=["missing_receipts", "coffee"])


def test_reminder_without_comment_has_no_comment_section() -> None:
    text, html = parts(reminder(comment="   "))
    assert "Comment added by" not in text
    assert "<blockquote" not in html


def test_reminder_wallet_unknown() -> None:
    client = ClientFigures(client_id="c-x", name="X", wallet_balance=None)
    assert "Wallet balance: not available" in parts(reminder(client=client))[0]
    text_fr = parts(reminder(client=client, recipient=CLAUDE))[0]
    assert "Solde du portefeuille : non disponible" in text_fr


def test_reminder_from_uses_mail_from_address_with_admin_name() -> None:
    message = reparse(reminder(reply_to="alice@firm.example"))
    sender = message["From"].addresses[0]
    assert sender.display_name == "Alice Admin"
    assert sender.addr_spec == "notifications@portal.example.com"
    assert message["Reply-To"] == "alice@firm.example"
    assert "Reply-To" not in reminder()


def test_reminder_non_ascii_names_survive_the_wire() -> None:
    message = reparse(reminder(sender_name="Zoé Lefèvre", recipient=CLAUDE, client=SOCIETE))
    assert message["From"].addresses[0].display_name == "Zoé Lefèvre"
    assert plain(str(message["Subject"])) == "Rappel : tâches en suspens de Société Générale"
    text, _ = parts(message)
    assert "Zoé Lefèvre" in text
    assert "-20,00 DKK" in text


def test_reminder_header_injection_is_neutralised() -> None:
    message = reparse(
        reminder(
            sender_name="Eve\r\nBcc: victim@evil.example",
            client=ClientFigures(client_id="c", name="Acme\nX-Evil: 1"),
        )
    )
    assert message["Bcc"] is None
    assert message["X-Evil"] is None
    assert message["From"].addresses[0].display_name == "Eve Bcc: victim@evil.example"
    assert "\n" not in str(message["Subject"])


def test_reminder_comment_and_names_are_escaped_in_html() -> None:
    message = reminder(
        comment='<script>alert("x")</script>\nsecond line & more',
        client=ClientFigures(client_id="c-1", name="<b>Bold</b> & Co"),
        sender_name="<i>Mallory</i>",
    )
    text, html = parts(message)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;<br>" in html
    assert "second line &amp; more" in html
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; Co" in html
    assert "<b>" not in html and "<i>" not in html
    # The text part is not HTML: it keeps the user's characters as typed.
    assert '<script>alert("x")</script>\nsecond line & more' in text
    assert "<b>Bold</b> & Co" in text


def test_reminder_client_id_is_quoted_in_the_link() -> None:
    client = ClientFigures(client_id="a/b c?d", name="Odd")
    text, _ = parts(reminder(client=client))
    assert "https://portal.example.com/clients/a%2Fb%20c%3Fd/account" in text


def test_reminder_message_id_is_stable_and_specific() -> None:
    first = reminder()["Message-ID"]
    assert re.fullmatch(r"<reminder-[0-9a-f]{32}@portal\.example\.com>", first)
    # Same reminder and recipient: same id, whatever else changes (a resend after a crash
    # may see newer figures or a new Date).
    assert reminder(client=SOCIETE, sent_at=datetime.now(UTC))["Message-ID"] == first
    assert reminder_message_id("rem-1", "u-anne", MAIL_FROM) == first
    assert reminder(recipient=CLAUDE)["Message-ID"] != first
    assert reminder(reminder_id="rem-2")["Message-ID"] != first
    # The parts cannot be shifted into one another.
    assert reminder_message_id("a:b", "c", MAIL_FROM) != reminder_message_id("a", "b:c", MAIL_FROM)


def test_message_id_domain_comes_from_mail_from() -> None:
    assert reminder(mail_from="noreply@Mail.Example.ORG")["Message-ID"].endswith(
        "@mail.example.org>"
    )
    with pytest.raises(ValueError, match="MAIL_FROM"):
        reminder(mail_from="not an address")


def test_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="base_url"):
        reminder(base_url="javascript:alert(1)")


# ---------------------------------------------------------------------------- digest


def test_digest_in_english_covers_every_client() -> None:
    message = digest()
    assert message["Subject"] == "Your client updates for 30 March 2026"
    text, html = parts(message)
    for body in (text, html):
        assert "Acme ApS" in body and "Société Générale" in body
        assert "EUR 1,234.50" in body
        assert "-DKK 20.00" in body
        assert "https://portal.example.com/clients/c-acme/account" in body
        assert "https://portal.example.com/clients/c-sg/account" in body
        assert "https://portal.example.com/unsubscribe/tok123" in body
        assert "30 March 2026" in body and "March 30" not in body
    # Sorted by name whatever order the caller passed them in.
    assert text.index("Acme ApS") < text.index("Société Générale")
    assert parts(digest(clients=[SOCIETE, ACME]))[0] == text


def test_digest_in_french() -> None:
    message = digest(recipient=CLAUDE)
    assert message["Subject"] == "Vos mises à jour clients du 30 mars 2026"
    text, html = parts(message)
    for body in (text, html):
        assert "Reçus manquants" in body
        assert "Dépenses prêtes à être exportées" in body
        assert "Solde du portefeuille" in body
        assert "1 234,50 EUR" in body
        assert "-20,00 DKK" in body
        assert "30 mars 2026" in body
        assert "Afficher les détails" in body
        assert "Se désabonner" in body


def raw_parts(message: EmailMessage) -> tuple[str, str]:
    """The text and HTML parts as sent, no-break spaces kept."""
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


ERO = ClientFigures(client_id="c-ero", name="Ærø Bryggeri", wallet_balance=Money(Decimal("249055.88"), "DKK"),
                    missing_receipts=1234567, ready_to_export=0)


def test_an_email_writes_amounts_counts_and_dates_with_the_pages_characters_per_language() -> None:
    """docs/PORTAL.md "Formats": the code and the number apart (a no-break space), never a
    symbol; en-GB dates for English, never the US order; French grouping with U+202F."""
    due = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # Monday 7 December 2026, 10:00 in Copenhagen
    english = digest(clients=[ERO], due_at=due)
    assert english["Subject"] == "Your client updates for 7 December 2026"
    french = digest(recipient=CLAUDE, clients=[ERO], due_at=due)
    assert french["Subject"] == "Vos mises à jour clients du 7 décembre 2026"
    for body in raw_parts(english):
        assert "DKK\u00a0249,055.88" in body and "DKK249" not in body
        assert "1,234,567" in body and "December 7" not in body
    for body in raw_parts(french):
        assert "249\u202f055,88\u00a0DKK" in body and "1\u202f234\u202f567" in body
        assert "7 décembre 2026" in body
    negative = digest(clients=[SOCIETE, ACME])
    assert "-DKK\u00a020.00" in raw_parts(negative)[0] and "EUR\u00a01,234.50" in raw_parts(negative)[0]


@pytest.mark.parametrize(("name", "expected"), [
    ("Ærø Bryggeri", "d'Ærø Bryggeri"), ("Acme ApS", "d'Acme ApS"), ("Élodie Café", "d'Élodie Café"),
    ("Øresund Logistik A/S", "d'Øresund Logistik A/S"), ("Hôtel du Lac", "d'Hôtel du Lac"),
    ("Yvelines Conseil", "d'Yvelines Conseil"), ("Œuvre Commune", "d'Œuvre Commune"),
    ("Société Générale", "de Société Générale"), ("Hachette", "de Hachette"), ("Hollande SARL", "de Hollande SARL"),
    ("Fabrice Dupont", "de Fabrice Dupont"),
])
def test_a_french_email_elides_de_before_a_client_name_that_starts_with_a_vowel_sound(
        name: str, expected: str) -> None:
    client = ClientFigures(client_id="c-x", name=name)
    message = reminder(recipient=CLAUDE, client=client)
    assert plain(str(message["Subject"])) == f"Rappel : tâches en suspens {expected}"
    text, html = parts(message)
    assert f"tâches en suspens {expected}." in text
    assert f"tâches en suspens {expected}." in html.replace("&#39;", "'")
    # English has no such rule.
    assert reminder(client=client)["Subject"] == f"Reminder: outstanding tasks for {name}"


def test_elision_is_written_once_for_de_le_and_que_and_keeps_a_capital() -> None:
    values = {"client": "Ærø Bryggeri"}
    assert fill("fr", "le {client}, que {client}, De {client}", values) == (
        "l'Ærø Bryggeri, qu'Ærø Bryggeri, D'Ærø Bryggeri")
    assert fill("fr", "code {client}", values) == "code Ærø Bryggeri"  # a word ending in "de" is not "de"
    assert fill("en", "de {client}", values) == "de Ærø Bryggeri"


def test_digest_date_is_the_copenhagen_date() -> None:
    # 23:30Z on the 29th is already the 30th in Copenhagen.
    late = datetime(2026, 3, 29, 23, 30, tzinfo=UTC)
    assert digest(due_at=late)["Subject"] == "Your client updates for 30 March 2026"


def test_digest_one_click_unsubscribe_headers() -> None:
    message = reparse(digest())
    assert message["List-Unsubscribe"] == "<https://portal.example.com/unsubscribe/tok123>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_digest_per_client_unsubscribe_links() -> None:
    text, html = parts(
        digest(client_unsubscribe_urls={"c-sg": "https://portal.example.com/u/c-sg?t=1&x=2"})
    )
    assert "Stop emails about this client: https://portal.example.com/u/c-sg?t=1&x=2" in text
    assert 'href="https://portal.example.com/u/c-sg?t=1&amp;x=2"' in html
    assert text.count("Stop emails about this client") == 1


@pytest.mark.parametrize(
    "url", ["mailto:x@y.z", "https://a.example/x y", "https://a.example/<x>", "/relative"]
)
def test_digest_refuses_unusable_unsubscribe_urls(url: str) -> None:
    with pytest.raises(ValueError):
        digest(unsubscribe_url=url)


def test_digest_needs_clients_and_an_aware_due_time() -> None:
    with pytest.raises(ValueError, match="at least one client"):
        digest(clients=[])
    with pytest.raises(ValueError, match="timezone-aware"):
        digest(due_at=datetime(2026, 3, 30, 10))


def test_digest_escapes_client_names() -> None:
    evil = ClientFigures(client_id="c-e", name='<img src=x onerror="alert(1)">')
    _, html = parts(digest(clients=[evil]))
    assert "<img" not in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html


def test_digest_message_id_is_stable_per_recipient_and_due_time() -> None:
    first = digest()["Message-ID"]
    assert re.fullmatch(r"<digest-[0-9a-f]{32}@portal\.example\.com>", first)
    assert digest(clients=[ACME])["Message-ID"] == first
    assert digest_message_id("u-anne", DUE, MAIL_FROM) == first
    # The same instant in another zone is the same due time.
    local = DUE.astimezone(ZoneInfo("Europe/Copenhagen"))
    assert digest(due_at=local)["Message-ID"] == first
    assert digest(recipient=CLAUDE)["Message-ID"] != first
    assert digest(due_at=DUE + timedelta(days=1))["Message-ID"] != first
    # A digest and a reminder never share an id.
    assert reminder_message_id("u-anne", DUE.isoformat(), MAIL_FROM) != first


def test_digest_from_keeps_mail_from_display_name() -> None:
    sender = reparse(digest())["From"].addresses[0]
    assert sender.display_name == "Partner Portal"
    assert sender.addr_spec == "notifications@portal.example.com"


# --------------------------------------------------------------------------- locales


@pytest.mark.parametrize(
    ("tag", "language", "formatting"),
    [
        # One rule per language, the page's (docs/PORTAL.md "Formats"), whatever the region.
        ("en", "en", "en_GB"),
        ("fr", "fr", "fr_FR"),
        ("fr-CA", "fr", "fr_FR"),
        ("fr_FR", "fr", "fr_FR"),
        ("FR", "fr", "fr_FR"),
        ("fr-Latn-CA", "fr", "fr_FR"),
        ("fr-x-private", "fr", "fr_FR"),
        ("en-GB", "en", "en_GB"),
        ("en-US", "en", "en_GB"),
        ("de-DE", "en", "en_GB"),
        ("da", "en", "en_GB"),
        ("zz", "en", "en_GB"),
        ("", "en", "en_GB"),
        (None, "en", "en_GB"),
        ("french", "en", "en_GB"),
    ],
)
def test_resolve_locale(tag: str | None, language: str, formatting: str) -> None:
    resolved = resolve_locale(tag)
    assert resolved.language == language
    assert str(resolved.formatting) == formatting


def test_unsupported_locale_falls_back_to_english() -> None:
    german = Recipient(user_id="u-de", email="d@firm.example", name="Dieter", locale="de-DE")
    text, _ = parts(reminder(recipient=german))
    assert "Hello Dieter," in text and "EUR 1,234.50" in text
    assert reminder(recipient=german)["Content-Language"] == "en"


def test_regional_french_gets_french_texts() -> None:
    quebec = Recipient(user_id="u-qc", email="q@firm.example", name="Josée", locale="fr-CA")
    message = digest(recipient=quebec)
    text, _ = parts(message)
    assert "Bonjour Josée," in text
    assert "1 234,50 EUR" in text
    assert message["Content-Language"] == "fr"


def test_english_of_any_region_formats_dates_the_british_way_as_the_page_does() -> None:
    for tag in ("en", "en-GB", "en-US"):
        brit = Recipient(user_id="u-gb", email="b@firm.example", name="Ben", locale=tag)
        assert digest(recipient=brit)["Subject"] == "Your client updates for 30 March 2026"


def test_catalogues_have_the_same_keys_and_placeholders() -> None:
    def fields(template: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name}

    assert CATALOG["en"].keys() == CATALOG["fr"].keys()
    for key, english in CATALOG["en"].items():
        assert fields(english) == fields(CATALOG["fr"][key]), key


# ----------------------------------------------------------------------------- models


def test_money_accepts_decimal_strings_and_refuses_floats() -> None:
    assert Money("10.10", "EUR").amount == Decimal("10.10")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(10.1, "EUR")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Money(Decimal("NaN"), "EUR")
    with pytest.raises(ValueError):
        Money(Decimal(1), "euro")


def test_client_figures_validate_counts() -> None:
    with pytest.raises(ValueError):
        ClientFigures(client_id="c", name="n", missing_receipts=-1)
    with pytest.raises(ValueError):
        ClientFigures(client_id="c", name="n", ready_to_export=True)


# ------------------------------------------------------------------- escaping property

TEMPLATE_TAGS = {
    "html", "head", "meta", "title", "body", "div", "p", "table",
    "tr", "td", "blockquote", "br", "a", "hr", "h2",
}  # fmt: skip


class _TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.data: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)

    def handle_data(self, data: str) -> None:
        self.data.append(data)


user_text = st.lists(
    st.sampled_from(list("<>&\"'/=ab cé\n"))
    | st.sampled_from(
        ["<script>", "</p>", "<a href='x'>", "&amp;", "<!--", "-->", "<img onerror=x>"]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=150, deadline=None)
@given(name=user_text, comment=user_text, sender=user_text)
def test_no_user_text_becomes_markup(name: str, comment: str, sender: str) -> None:
    client = ClientFigures(client_id="c-1", name=name or "x")
    message = reminder(client=client, comment=comment, sender_name=sender)
    _, html = parts(message)
    collector = _TagCollector()
    collector.feed(html)
    assert collector.tags <= TEMPLATE_TAGS
    assert collector.attributes <= {
        "lang", "charset", "name", "content", "style", "role", "cellpadding",
        "cellspacing", "href",
    }  # fmt: skip
    # And what the user wrote is still there, as text.
    shown = plain("".join(collector.data))
    for line in plain(comment).strip().splitlines():
        assert line in shown


def test_offset_zones_in_due_time_are_accepted() -> None:
    due = DUE.astimezone(timezone(timedelta(hours=-5)))
    assert digest(due_at=due)["Message-ID"] == digest()["Message-ID"]


# ----------------------------------------------------------------------------- the wire

any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=120) | st.lists(
    st.sampled_from([*string.printable, "=?", "?=", "é", "\u00a0"]), max_size=60
).map("".join)  # any character at all, or ASCII with the specials (quotes, backslashes, "<>@,;:") more often


def one_line(text: str) -> str:
    return " ".join(text.split())


def display_name(raw: str) -> str:
    """The display name of a raw address header as an RFC 2047 decoder reads it: the whitespace
    between two encoded words is dropped (Python's structured-header parser keeps it, so a name
    long enough to need two encoded words reads there with a space at the join)."""
    name, _ = parseaddr(raw)
    return str(make_header(decode_header(name)))


@settings(max_examples=300, deadline=None)
@given(sender=any_text, recipient=any_text, client=any_text)
def test_any_name_survives_the_headers_as_written(sender: str, recipient: str, client: str) -> None:
    wire = compose_reminder(
        recipient=Recipient(user_id="u-1", email="anne@firm.example", name=recipient, locale="fr"),
        sender_name=sender, client=ClientFigures(client_id="c-1", name=client or "c"), tasks=["missing_receipts"],
        comment="", reminder_id="rem-1", mail_from=MAIL_FROM, base_url=BASE_URL,
    )
    # 7-bit, CRLF line ends, no header line past the RFC's 998 (a long quoted name may pass 78)
    assert wire.data.isascii() and not wire.smtputf8
    head = wire.data.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    assert b"\n" not in head.replace(b"\r\n", b"") and b"\r" not in head.replace(b"\r\n", b"")
    raw = email.message_from_bytes(wire.data, policy=email.policy.compat32)
    assert display_name(raw["From"]) == one_line(sender)
    assert display_name(raw["To"]) == one_line(recipient)
    message = email.message_from_bytes(wire.data, policy=email.policy.default)
    assert message["To"].addresses[0].addr_spec == "anne@firm.example"
    # The subject is one line: its no-break spaces too become plain spaces.
    assert str(message["Subject"]) == one_line(fill("fr", "Rappel\u00a0: tâches en suspens de {client}",
                                                    {"client": one_line(client or "c")}))
    assert message["Message-ID"] == wire.message_id
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]


def test_a_serialized_digest_is_what_render_digest_reads_back() -> None:
    wire = compose_digest(recipient=CLAUDE, clients=[ACME, SOCIETE], due_at=DUE, mail_from=MAIL_FROM,
                          base_url=BASE_URL, unsubscribe_url="https://portal.example.com/unsubscribe/tok123",
                          sent_at=datetime(2026, 3, 30, 8, 0, 5, tzinfo=UTC), message_id="<given@portal.example.com>")
    assert wire.envelope_from == "notifications@portal.example.com"
    assert wire.envelope_to == ("claude@firm.example",)
    assert wire.message_id == "<given@portal.example.com>"  # the id recorded with the delivery wins
    assert b"\r\nMessage-ID: <given@portal.example.com>\r\n" in wire.data
    assert all(len(line) <= 78 for line in wire.data.split(b"\r\n")), "quoted-printable keeps lines short"
    text, html = parts(wire.message())
    assert text == parts(digest(recipient=CLAUDE))[0]
    assert "Société Générale" in html


def test_a_non_ascii_address_needs_smtputf8() -> None:
    wire = compose_reminder(
        recipient=Recipient(user_id="u-z", email="zoé@firm.example", name="Zoé", locale="fr"),
        sender_name="Ada", client=ACME, tasks=["missing_receipts"], comment="", reminder_id="rem-1",
        mail_from=MAIL_FROM, base_url=BASE_URL,
    )
    assert wire.smtputf8 and wire.envelope_to == ("zoé@firm.example",)
    assert wire.message()["To"].addresses[0].addr_spec == "zoé@firm.example"
    assert wire.message()["To"].addresses[0].display_name == "Zoé"
