"""The walking skeleton, end to end through the real broker, stores and SMTP server:
platform events land in the client directory's Onboarding tab, and a reminder reaches
every accountant assigned to the client, once."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import Publish, unique
from tests.harness import auth, client_directory, eventually, notifier

pytestmark = pytest.mark.integration


async def test_an_onboarding_client_shows_for_the_admin_and_a_reminder_reaches_its_accountants(
    broker, smtp, stores, store_kind: str, publish: Publish
) -> None:
    smtp_port, sink = smtp
    firm, admin, accountant, other = unique("firm"), unique("admin"), unique("acc"), unique("acc")
    client_id = unique("client")
    async with client_directory(broker.bootstrap, stores.new(store_kind)) as (_, api), \
            notifier(broker.bootstrap, stores.new(store_kind), smtp_port) as _:
        publish("platform.partner-members", "partner.member.added.v1", firm,
                {"user_id": admin, "email": f"{admin}@firm.test", "name": "Ada Admin", "role": "admin",
                 "locale": "en"})
        for user, name, locale in ((accountant, "Chloé Comptable", "fr"), (other, "Otto Other", "en")):
            publish("platform.partner-members", "partner.member.added.v1", firm,
                    {"user_id": user, "email": f"{user}@firm.test", "name": name, "role": "accountant",
                     "locale": locale})
        publish("platform.partner-clients", "client.onboarding_started.v1", firm,
                {"client_id": client_id, "client_name": "Société Générale", "invited_by": admin})
        publish("platform.partner-clients", "client.accountant_assigned.v1", firm,
                {"client_id": client_id, "user_id": accountant})
        publish("platform.client-metrics", "client.metrics_updated.v1", firm,
                {"client_id": client_id, "wallet_balance": {"amount": "1234.50", "currency": "EUR"},
                 "missing_receipts": 7, "ready_to_export": 3, "as_of": "2026-11-27T10:00:00+00:00"})

        async def onboarding_tab() -> dict | None:
            response = await api.get("/v1/clients", params={"tab": "onboarding"}, headers=auth(admin, firm, "admin"))
            assert response.status_code == 200, response.text
            page = response.json()
            items = page["items"]
            if items and items[0]["accountants"] and items[0]["missing_receipts"] == 7:
                return page
            return None

        page = await eventually(onboarding_tab)
        assert [i["client_id"] for i in page["items"]] == [client_id]
        item = page["items"][0]
        assert item["name"] == "Société Générale"
        assert item["status"] == "onboarding"
        assert item["accountants"] == [{"user_id": accountant, "name": "Chloé Comptable"}]
        assert item["wallet_balance"] == {"amount": "1234.50", "currency": "EUR"}
        assert {t["id"]: t["count"] for t in page["tabs"]} == {"onboarding": 1, "mine": 0, "all": 0}

        # The admin asks, through the API, to remind the client's accountants.
        response = await api.post(f"/v1/clients/{client_id}/reminders",
                                  json={"tasks": ["missing_receipts", "wallet_balance"], "comment": "Merci !"},
                                  headers={**auth(admin, firm, "admin"), "Idempotency-Key": "once"})
        assert response.status_code == 202, response.text
        again = await api.post(f"/v1/clients/{client_id}/reminders",
                               json={"tasks": ["missing_receipts", "wallet_balance"], "comment": "Merci !"},
                               headers={**auth(admin, firm, "admin"), "Idempotency-Key": "once"})
        assert again.json() == response.json()

        mails = await asyncio.to_thread(sink.wait_for, lambda _: bool(sink.to(f"{accountant}@firm.test")))
        await asyncio.sleep(1.0)  # a duplicate, if any, would arrive meanwhile
        received = sink.to(f"{accountant}@firm.test")
        assert len(received) == 1, [m["Message-ID"] for m in received]
        mail = received[0]
        assert sink.to(f"{other}@firm.test") == []
        assert sink.to(f"{admin}@firm.test") == []
        assert "Société Générale" in mail["Subject"]
        text = mail.get_body(("plain",)).get_content()
        assert "7" in text and "Merci !" in text and "Ada Admin" in text
        assert "1 234,50" in text.replace("\u202f", " ").replace("\xa0", " ")  # French amount format
        assert mail.get_body(("html",)) is not None
        assert mail["Message-ID"]
        assert len(mails) >= 1
