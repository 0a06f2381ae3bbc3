"""Reminders end to end through the real broker into a real SMTP server: the assigned
accountants and nobody else, once, in their language, with the comment and the admin's name;
outcomes (sent, and a 550 refusal) published on portal.notification-deliveries."""

from __future__ import annotations

import asyncio
import uuid
from email.message import EmailMessage

import pytest

from services.notifier.emails.render import reminder_message_id
from tests.conftest import Publish, unique
from tests.harness import eventually, notifier
from tests.notifier.bus import wait_for_events
from tests.notifier.test_smtp import Handler, smtp_server

pytestmark = pytest.mark.integration
MAIL_FROM = "Partner portal <no-reply@portal.test>"


def plain(text: str) -> str:
    return text.replace("\u202f", " ").replace("\xa0", " ")


def text_of(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    return plain(body.get_content())


async def test_a_reminder_reaches_the_assigned_accountants_once_and_outcomes_are_published(
    broker, stores, store_kind: str, publish: Publish
) -> None:
    firm, client = unique("firm"), unique("client")
    admin, other_admin, chloe, otto, rita, ulla, bob = (
        unique(n) for n in ("admin", "admin2", "chloe", "otto", "rita", "ulla", "bob"))
    address = {u: f"{u}@firm.test" for u in (admin, other_admin, chloe, otto, rita, ulla, bob)}
    handler = Handler(rcpt_replies={address[bob]: "550 5.1.1 No such mailbox"})
    async with smtp_server(handler) as smtp, \
            notifier(broker.bootstrap, stores.new(store_kind), smtp.port) as _:
        for user, name, role, locale in ((admin, "Ada Admin", "admin", "en"), (other_admin, "Al", "admin", "en"),
                                         (chloe, "Chloé", "accountant", "fr-FR"), (otto, "Otto", "accountant", "de"),
                                         (rita, "Rita", "accountant", "en"), (ulla, "Ulla", "accountant", "en"),
                                         (bob, "Bob", "accountant", "en")):
            publish("platform.partner-members", "partner.member.added.v1", firm,
                    {"user_id": user, "email": address[user], "name": name, "role": role, "locale": locale})
        publish("platform.partner-clients", "client.onboarding_started.v1", firm,
                {"client_id": client, "client_name": "Société Générale", "invited_by": admin})
        for user in (chloe, otto, rita, bob):
            publish("platform.partner-clients", "client.accountant_assigned.v1", firm,
                    {"client_id": client, "user_id": user})
        publish("platform.client-metrics", "client.metrics_updated.v1", firm,
                {"client_id": client, "wallet_balance": {"amount": "1234.50", "currency": "EUR"},
                 "missing_receipts": 7, "ready_to_export": 3, "as_of": "2026-11-27T10:00:00+00:00"})
        publish("platform.partner-members", "partner.member.removed.v1", firm, {"user_id": rita})
        # Straight after the facts, on another topic: it may be read before them.
        reminder_id = str(uuid.uuid4())
        reminder = {"reminder_id": reminder_id, "client_id": client, "requested_by": admin,
                    "tasks": ["missing_receipts", "wallet_balance"], "comment": "Merci d'ici vendredi !\nAda"}
        event_id = publish("portal.notifications", "notification.reminder_requested.v1", firm, reminder)

        await eventually(lambda: _arrived(handler, [address[chloe], address[otto]]))
        # Again: the same event at a new offset, and a new event for the same reminder.
        publish("portal.notifications", "notification.reminder_requested.v1", firm, reminder, event_id=event_id)
        publish("portal.notifications", "notification.reminder_requested.v1", firm, reminder)
        events = await wait_for_events(
            broker.bootstrap, "portal.notification-deliveries", firm,
            lambda found: len(found) >= 3)
        await asyncio.sleep(1.0)  # a duplicate, if any, would arrive meanwhile

        received = [m.message for m in handler.messages if m.rcpt_tos[0].endswith("@firm.test")]
        by_rcpt = {rcpt: [m for m in received if m["To"].addresses[0].addr_spec == rcpt] for rcpt in address.values()}
        assert {r for r, m in by_rcpt.items() if m} == {address[chloe], address[otto]}
        assert all(len(m) <= 1 for m in by_rcpt.values())  # once each
        to_chloe: EmailMessage = by_rcpt[address[chloe]][0]
        to_otto: EmailMessage = by_rcpt[address[otto]][0]
        assert to_chloe["Message-ID"] == reminder_message_id(reminder_id, chloe, MAIL_FROM)
        assert str(to_chloe["From"]) == "Ada Admin <no-reply@portal.test>"
        assert to_chloe["Reply-To"] == address[admin]
        assert to_chloe["Content-Language"] == "fr" and "Société Générale" in to_chloe["Subject"]
        chloe_text = text_of(to_chloe)
        assert "Merci d'ici vendredi !" in chloe_text and "Ada Admin" in chloe_text
        assert "Reçus manquants : 7" in chloe_text and "1 234,50 EUR" in chloe_text
        assert "Dépenses prêtes" not in chloe_text  # not a ticked task
        assert to_otto["Content-Language"] == "en"  # German falls back to English
        otto_text = text_of(to_otto)
        assert "Missing receipts: 7" in otto_text and "EUR 1,234.50" in otto_text

        sent = sorted(e["data"]["user_id"] for e in events if e["type"] == "notification.email_sent.v1")
        failed = [e for e in events if e["type"] == "notification.email_failed.v1"]
        assert sent == sorted([chloe, otto])
        assert [(e["data"]["user_id"], e["data"]["code"]) for e in failed] == [(bob, 550)]
        assert all(e["data"]["kind"] == "reminder" and e["data"]["client_ids"] == [client] for e in events)
        assert len(events) == 3


async def _arrived(handler: Handler, addresses: list[str]) -> bool:
    rcpts = {m.rcpt_tos[0] for m in handler.messages}
    return all(a in rcpts for a in addresses)
