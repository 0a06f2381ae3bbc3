"""View details tells when the next digest covering the client goes out to the caller, by the
notifier's own rule (contracts/schedule.py), in Copenhagen time; null while email is off."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts.schedule import first_due
from tests.client_directory.support import assigned, connected, member_added
from tests.client_directory.test_security import Portal, bearer


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[Portal]:
    made = Portal(tmp_path)
    f = made.firm
    made.send(member_added(f, "ada", "Ada", role="admin"), member_added(f, "chloe", "Chloé"),
              connected(f, "c1", "Acme"), assigned(f, "c1", "chloe"))
    yield made
    made.facts.app.close()


def test_view_details_says_when_the_next_digest_goes_out_once_email_is_on(portal: Portal) -> None:
    chloe = bearer("chloe", portal.firm, "accountant")
    off = portal.http.get("/v1/clients/c1", headers=chloe).json()["notifications"]
    assert off == {"email_enabled": False, "frequency": "weekly", "next_digest_at": None}

    before = datetime.now(UTC)
    assert portal.http.put("/v1/clients/c1/notifications", headers=chloe,
                           json={"email_enabled": True, "frequency": "daily"}).status_code == 200
    after = datetime.now(UTC)
    on = portal.http.get("/v1/clients/c1", headers=chloe).json()["notifications"]
    # Whatever the frequency, the first digest is the first Monday 10:00 after the setting.
    assert on["next_digest_at"] in {first_due(before).isoformat(), first_due(after).isoformat()}
    announced = datetime.fromisoformat(on["next_digest_at"])
    assert (announced.weekday(), announced.hour, announced.minute) == (0, 10, 0)
    assert announced.utcoffset() == first_due(before).utcoffset()  # +01:00 in winter, +02:00 in summer

    # Another member's setting is theirs: the admin has none for this client.
    ada = portal.http.get("/v1/clients/c1", headers=bearer("ada", portal.firm, "admin")).json()
    assert ada["notifications"]["next_digest_at"] is None

    assert portal.http.put("/v1/clients/c1/notifications", headers=chloe,
                           json={"email_enabled": False, "frequency": "daily"}).status_code == 200
    assert portal.http.get("/v1/clients/c1", headers=chloe).json()["notifications"]["next_digest_at"] is None


def test_the_next_digest_field_is_in_the_published_contract(portal: Portal) -> None:
    schema = portal.http.get("/openapi.json").json()["components"]["schemas"]
    assert "next_digest_at" in schema["NotificationDetails"]["properties"]
