"""One-click unsubscribe: tokens that cannot be forged, a POST that turns preferences off and
publishes it, a GET that never does."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from contracts.envelope import CloudEvent
from services.notifier.adapters.http import add_unsubscribe_routes
from services.notifier.application.unsubscribe import TokenClaim, Unsubscriber, UnsubscribeTokens
from services.notifier.domain.model import Preference
from tests.notifier.world import SECRET, World, cph, digest_at

FIRM = "firm-u"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ISSUED = cph(2026, 1, 12)  # the first digest's due time: the links of that digest are issued then


@pytest.fixture
def world(tmp_path: Path) -> World:
    made = World(f"sqlite:///{tmp_path / 'notifier.db'}")
    made.member(FIRM, "chloe", locale="fr")
    made.member(FIRM, "otto")
    made.client(FIRM, "acme", name="Acme ApS", accountants=("chloe", "otto"))
    made.client(FIRM, "sg", name="Société Générale", accountants=("chloe",))
    made.client(FIRM, "zeta", name="Zeta", accountants=("chloe",))
    for client in ("acme", "sg", "zeta"):
        made.prefer(FIRM, client, "chloe", "daily")
    made.prefer(FIRM, "acme", "otto", "weekly")
    return made


@pytest.fixture
def tokens() -> UnsubscribeTokens:
    return UnsubscribeTokens(SECRET)


def digest_of(world: World, user: str) -> str:
    world.scheduler.run(cph(2026, 1, 12))
    (digest,) = [d for d in world.deliveries("digest") if d.user_id == user]
    return digest.message_id


# --- tokens ---------------------------------------------------------------------------------------


def test_a_token_names_what_it_stops_and_verifies(tokens: UnsubscribeTokens) -> None:
    token = tokens.for_client(FIRM, "chloe", "acme", ISSUED)
    issued = int(ISSUED.timestamp())
    assert tokens.verify(token) == TokenClaim("c", FIRM, "chloe", "acme", issued)
    digest = tokens.for_digest(FIRM, "chloe", "<digest-1@portal.test>", ISSUED)
    assert tokens.verify(digest) == TokenClaim("d", FIRM, "chloe", "<digest-1@portal.test>", issued)
    assert len(digest) < 200 and all(c.isalnum() or c in "-_." for c in digest)  # URL-safe as is


def _b64(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def test_forged_tampered_or_foreign_tokens_are_refused(tokens: UnsubscribeTokens) -> None:
    token = tokens.for_client(FIRM, "chloe", "acme", ISSUED)
    body, mac = token.split(".")
    issued = int(ISSUED.timestamp())
    other_user = _b64(["c", FIRM, "otto", "acme", issued])
    assert tokens.verify(f"{other_user}.{mac}") is None  # someone else's preference, same MAC
    later = _b64(["c", FIRM, "chloe", "acme", issued + 10**8])
    assert tokens.verify(f"{later}.{mac}") is None  # a link cannot be made to outlive later choices
    assert tokens.verify(f"{body}.{mac[:-2]}AA") is None
    assert tokens.verify(UnsubscribeTokens("another-secret-of-at-least-32-bytes!!").for_client(
        FIRM, "chloe", "acme", ISSUED)) is None
    for junk in ("acme", "chloe", "", ".", "a.b.c", "%%%.%%%", "x" * 2000, f"{body}."):
        assert tokens.verify(junk) is None


def test_the_secret_must_be_long_enough() -> None:
    with pytest.raises(ValueError):
        UnsubscribeTokens("short")


# --- turning preferences off -----------------------------------------------------------------------


def test_the_digest_token_turns_off_every_client_of_that_digest_and_publishes_it(
    world: World, tokens: UnsubscribeTokens
) -> None:
    message_id = digest_of(world, "chloe")
    unsubscriber = Unsubscriber(world.notifier, tokens)
    target = unsubscriber.unsubscribe(tokens.for_digest(FIRM, "chloe", message_id, ISSUED), NOW)
    assert target is not None and target.turned_off == 3 and target.locale == "fr"
    assert sorted(target.client_names) == ["Acme ApS", "Société Générale", "Zeta"]
    for client in ("acme", "sg", "zeta"):
        preference = world.preference(FIRM, client, "chloe")
        assert (preference.email_enabled, preference.frequency, preference.set_at) == (False, "daily", NOW)
    assert world.preference(FIRM, "acme", "otto").email_enabled  # somebody else's stays on
    published = [CloudEvent.model_validate(m) for m in world.outbound("notification.preference_set.v1")]
    assert sorted(e.subject for e in published) == ["acme", "sg", "zeta"]
    assert {(e.partnerid, e.data["user_id"], e.data["email_enabled"]) for e in published} == {(FIRM, "chloe", False)}
    # Its ids are marked received: when they come back on portal.notifications, nothing happens.
    received = {r.event_id for r in world.received()}
    assert {e.id for e in published} <= received
    head = world.head()
    world.publish("notification.preference_set.v1", FIRM, published[0].data, event_id=published[0].id, at=NOW)
    assert len(world.events(Preference.Set.TOPIC)) == 4 + 3
    assert world.head() == head  # a duplicate: only the Kafka position moved
    # And the next digests leave them out.
    assert digest_at(world, cph(2026, 3, 11)) == {"otto": ["acme"]}


def test_unsubscribing_twice_changes_nothing_the_second_time(world: World, tokens: UnsubscribeTokens) -> None:
    unsubscriber = Unsubscriber(world.notifier, tokens)
    token = tokens.for_client(FIRM, "chloe", "sg", ISSUED)
    first = unsubscriber.unsubscribe(token, NOW)
    head = world.head()
    second = unsubscriber.unsubscribe(token, NOW)
    assert first is not None and second is not None
    assert (first.turned_off, second.turned_off, first.client_ids) == (1, 0, ["sg"])
    assert world.head() == head
    assert world.preference(FIRM, "acme", "chloe").email_enabled


def test_a_digest_token_for_someone_elses_digest_is_refused(world: World, tokens: UnsubscribeTokens) -> None:
    message_id = digest_of(world, "chloe")
    unsubscriber = Unsubscriber(world.notifier, tokens)
    assert unsubscriber.unsubscribe(tokens.for_digest(FIRM, "otto", message_id, ISSUED), NOW) is None
    assert unsubscriber.unsubscribe(tokens.for_digest(FIRM, "chloe", "<digest-unknown@portal.test>", ISSUED),
                                    NOW) is None
    assert world.preference(FIRM, "acme", "chloe").email_enabled


# --- HTTP -------------------------------------------------------------------------------------------


@pytest.fixture
async def http(world: World, tokens: UnsubscribeTokens) -> AsyncIterator[httpx.AsyncClient]:
    api = FastAPI()
    add_unsubscribe_routes(api, Unsubscriber(world.notifier, tokens), clock=lambda: NOW)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://notifier.test") as client:
        yield client


async def test_get_only_asks_and_post_unsubscribes(world: World, tokens: UnsubscribeTokens,
                                                   http: httpx.AsyncClient) -> None:
    url = f"/unsubscribe/{tokens.for_digest(FIRM, 'chloe', digest_of(world, 'chloe'), ISSUED)}"
    head = world.head()
    for _ in range(3):  # mail clients and scanners prefetch
        page = await http.get(url)
        assert page.status_code == 200 and '<form method="post">' in page.text
        assert "Se désabonner" in page.text and "Société Générale" in page.text
        assert page.headers["cache-control"] == "no-store"
    assert world.head() == head and world.preference(FIRM, "sg", "chloe").email_enabled
    done = await http.post(url, content=b"List-Unsubscribe=One-Click",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert done.status_code == 200 and "Vous ne recevrez plus" in done.text
    assert not any(world.preference(FIRM, c, "chloe").email_enabled for c in ("acme", "sg", "zeta"))
    again = await http.post(url)
    assert again.status_code == 200


async def test_an_invalid_token_is_a_404_that_says_nothing(http: httpx.AsyncClient, world: World) -> None:
    for method in ("GET", "POST"):
        response = await http.request(method, "/unsubscribe/acme")
        assert response.status_code == 404 and "not valid" in response.text
    assert world.preference(FIRM, "acme", "chloe").email_enabled


# --- an old link and a later choice; framing ---------------------------------------------------------


async def test_an_old_link_does_not_undo_a_later_choice_to_get_emails_again(
    world: World, tokens: UnsubscribeTokens, http: httpx.AsyncClient
) -> None:
    message_id = digest_of(world, "chloe")
    old_digest = f"/unsubscribe/{tokens.for_digest(FIRM, 'chloe', message_id, ISSUED)}"
    old_sg = f"/unsubscribe/{tokens.for_client(FIRM, 'chloe', 'sg', ISSUED)}"
    # After that digest, Chloé turns the emails about SG off in the portal, then on again.
    world.prefer(FIRM, "sg", "chloe", "daily", enabled=False, at=cph(2026, 1, 20))
    world.prefer(FIRM, "sg", "chloe", "daily", at=cph(2026, 2, 2))
    for method in ("GET", "POST"):
        page = await http.request(method, old_sg)
        assert page.status_code == 410 and "ont changé après" in page.text and "Société Générale" in page.text
    assert world.preference(FIRM, "sg", "chloe").email_enabled
    done = await http.post(old_digest)  # the digest's link still speaks for the clients not chosen again
    assert done.status_code == 200 and "Société Générale" not in done.text
    assert [world.preference(FIRM, c, "chloe").email_enabled for c in ("acme", "sg", "zeta")] == [False, True, False]
    newer = tokens.for_client(FIRM, "chloe", "sg", cph(2026, 2, 9))  # a link from an email made after her choice
    assert (await http.post(f"/unsubscribe/{newer}")).status_code == 200
    assert not world.preference(FIRM, "sg", "chloe").email_enabled


async def test_every_page_the_notifier_serves_refuses_to_be_framed(
    world: World, tokens: UnsubscribeTokens, http: httpx.AsyncClient
) -> None:
    url = f"/unsubscribe/{tokens.for_digest(FIRM, 'chloe', digest_of(world, 'chloe'), ISSUED)}"
    responses = [await http.get(url), await http.get("/unsubscribe/acme"), await http.post("/unsubscribe/acme"),
                 await http.post(url)]
    transport = httpx.ASGITransport(app=world.service.api)  # the service's own app, as bootstrap builds it
    async with httpx.AsyncClient(transport=transport, base_url="http://notifier.test") as service:
        responses += [await service.get("/docs"), await service.get(url), await service.get("/unsubscribe/x")]
    for response in responses:
        assert response.headers["content-security-policy"] == "frame-ancestors 'none'", response.url
        assert response.headers["x-frame-options"] == "DENY", response.url
