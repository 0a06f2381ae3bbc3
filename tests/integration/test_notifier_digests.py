"""Digests end to end: facts and preferences through the real broker, the scheduler at a due
time, emails into the real SMTP server, and the one-click unsubscribe that turns the
preference off and publishes it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import httpx
import pytest

from services.notifier.domain.model import Preference, preference_key
from services.notifier.domain.schedule import first_due, next_slot
from services.notifier.emails.render import digest_message_id
from tests.conftest import Publish, unique
from tests.harness import eventually, notifier
from tests.notifier.bus import wait_for_events

pytestmark = pytest.mark.integration
MAIL_FROM = "Partner portal <no-reply@portal.test>"  # what tests.harness.notifier configures


def plain(text: str) -> str:
    return text.replace("\u202f", " ").replace("\xa0", " ")


def text_of(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    return plain(body.get_content())


async def test_digests_reach_the_right_people_in_their_language_and_unsubscribe_works(
    broker, smtp, stores, store_kind: str, publish: Publish
) -> None:
    smtp_port, sink = smtp
    firm = unique("firm")
    admin, chloe, otto, rita, ulla = (unique(n) for n in ("admin", "chloe", "otto", "rita", "ulla"))
    acme, sg, gone = unique("acme"), unique("sg"), unique("gone")
    async with notifier(broker.bootstrap, stores.new(store_kind), smtp_port) as (service, _):
        ids = []
        for user, name, role, locale in ((admin, "Ada Admin", "admin", "en"), (chloe, "Chloé Comptable", "accountant",
                                          "fr"), (otto, "Otto", "accountant", "en-GB"),
                                         (rita, "Rita", "accountant", "en"), (ulla, "Ulla", "accountant", "en")):
            ids.append(publish("platform.partner-members", "partner.member.added.v1", firm,
                               {"user_id": user, "email": f"{user}@firm.test", "name": name, "role": role,
                                "locale": locale}))
        for client, name in ((acme, "Acme ApS"), (sg, "Société Générale"), (gone, "Gone Ltd")):
            ids.append(publish("platform.partner-clients", "client.onboarding_started.v1", firm,
                               {"client_id": client, "client_name": name, "invited_by": admin}))
            ids.append(publish("platform.partner-clients", "client.verification_completed.v1", firm,
                               {"client_id": client}))
        for client, user in ((acme, chloe), (sg, chloe), (acme, otto), (acme, rita), (gone, chloe)):
            ids.append(publish("platform.partner-clients", "client.accountant_assigned.v1", firm,
                               {"client_id": client, "user_id": user}))
        for client, amount, missing, ready in ((acme, "1234.50", 7, 3), (sg, "-20.00", 0, 12)):
            ids.append(publish("platform.client-metrics", "client.metrics_updated.v1", firm,
                               {"client_id": client, "wallet_balance": {"amount": amount, "currency": "EUR"},
                                "missing_receipts": missing, "ready_to_export": ready,
                                "as_of": datetime.now(UTC).isoformat()}))
        ids.append(publish("platform.partner-clients", "client.disconnected.v1", firm, {"client_id": gone}))
        ids.append(publish("platform.partner-members", "partner.member.removed.v1", firm, {"user_id": rita}))
        for client, user, frequency in ((acme, admin, "weekly"), (sg, admin, "daily"), (acme, chloe, "weekly"),
                                        (sg, chloe, "monthly"), (gone, chloe, "weekly"), (acme, otto, "daily"),
                                        (acme, rita, "weekly"), (sg, ulla, "weekly")):
            ids.append(publish("portal.notifications", "notification.preference_set.v1", firm,
                               {"client_id": client, "user_id": user, "email_enabled": True, "frequency": frequency}))

        async def all_applied() -> bool:
            return not set(ids) - service.notifier.inbox.inbox_received(ids)

        await eventually(all_applied)
        # The first digests: the first Monday 10:00 after the preferences were set.
        due = first_due(datetime.now(UTC))
        result = await asyncio.to_thread(service.scheduler.run, due)
        made = set(result.message_ids)  # (earlier tests' firms are on the topics too)
        expected = {u: digest_message_id(u, due, MAIL_FROM, partner_id=firm) for u in (admin, chloe, otto, rita, ulla)}
        assert {u for u, i in expected.items() if i in made} == {admin, chloe, otto}
        addresses = {u: f"{u}@firm.test" for u in (admin, chloe, otto, rita, ulla)}
        await asyncio.to_thread(sink.wait_for, lambda _: all(sink.to(addresses[u]) for u in (admin, chloe, otto)))
        await asyncio.sleep(0.5)  # a duplicate, if any, would arrive meanwhile
        assert sink.to(addresses[rita]) == [] and sink.to(addresses[ulla]) == []  # left; not assigned
        mails = {u: sink.to(addresses[u]) for u in (admin, chloe, otto)}
        assert all(len(m) == 1 for m in mails.values()), {u: len(m) for u, m in mails.items()}
        to_admin, to_chloe, to_otto = (mails[u][0] for u in (admin, chloe, otto))

        for user, mail in ((admin, to_admin), (chloe, to_chloe), (otto, to_otto)):
            assert mail["Message-ID"] == digest_message_id(user, due, MAIL_FROM, partner_id=firm)
            assert mail["List-Unsubscribe"].startswith(f"<http://127.0.0.1:{service.settings.http_port}/unsubscribe/")
            assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert mail.get_body(("html",)) is not None
        # The admin: both clients (assigned or not); English, figures the English way.
        assert to_admin["Content-Language"] == "en" and to_admin["Subject"].startswith("Your client updates for")
        admin_text = text_of(to_admin)
        assert "Acme ApS" in admin_text and "Société Générale" in admin_text and "Gone Ltd" not in admin_text
        assert "EUR 1,234.50" in admin_text and "-EUR 20.00" in admin_text and "Missing receipts: 7" in admin_text
        # The accountant in French: her assigned, still connected clients; French formats.
        assert to_chloe["Content-Language"] == "fr" and to_chloe["Subject"].startswith("Vos mises à jour clients du")
        chloe_text = text_of(to_chloe)
        assert "Acme ApS" in chloe_text and "Société Générale" in chloe_text and "Gone Ltd" not in chloe_text
        assert "1 234,50 EUR" in chloe_text and "Reçus manquants : 7" in chloe_text
        assert "Bonjour Chloé Comptable" in chloe_text
        # en-GB: English texts, British formats.
        otto_text = text_of(to_otto)
        assert "Acme ApS" in otto_text and "Société Générale" not in otto_text and "EUR 1,234.50" in otto_text

        # One click from chloe's mail client: a POST to the List-Unsubscribe URL.
        url = to_chloe["List-Unsubscribe"].strip("<>")
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(url)).status_code == 200  # a prefetch changes nothing
            assert service.notifier.repository.get(preference_key(firm, acme, chloe)).email_enabled
            response = await http.post(url, content=b"List-Unsubscribe=One-Click",
                                       headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code == 200
        for client in (acme, sg):
            assert not service.notifier.repository.get(preference_key(firm, client, chloe)).email_enabled
        published = await wait_for_events(
            broker.bootstrap, "portal.notifications", firm,
            lambda events: sum(e["type"] == "notification.preference_set.v1" and e["source"].endswith("notifier")
                               for e in events) == 2)
        off = [e for e in published if e["source"].endswith("notifier")]
        assert sorted(e["subject"] for e in off) == sorted([acme, sg])
        assert {(e["data"]["user_id"], e["data"]["email_enabled"]) for e in off} == {(chloe, False)}
        # They come back to the notifier on portal.notifications: recognised, not applied again.
        await asyncio.sleep(1.5)
        preference: Preference = service.notifier.repository.get(preference_key(firm, acme, chloe))
        assert preference.version == 4  # created, set, covered, set off

        # The next Monday: chloe gets nothing any more; the others get theirs.
        monday = next_slot("weekly", due + timedelta(minutes=1))
        result = await asyncio.to_thread(service.scheduler.run, monday)
        made = set(result.message_ids)
        expected = {u: digest_message_id(u, monday, MAIL_FROM, partner_id=firm) for u in (admin, chloe, otto)}
        assert {u for u, i in expected.items() if i in made} == {admin, otto}
        await asyncio.to_thread(sink.wait_for, lambda _: len(sink.to(addresses[admin])) == 2)
        await asyncio.sleep(0.5)
        assert len(sink.to(addresses[chloe])) == 1 and len(sink.to(addresses[otto])) == 2
