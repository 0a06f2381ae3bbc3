"""The client directory's HTTP API (docs/CONTRACT.md) through the real broker, on SQLite and on
PostgreSQL: facts published on Kafka become the tabs each role sees; commands answer with
their result, are visible to the next read, and publish their events on Kafka once; every
wrong token, role, firm, id, parameter or body gets the 4xx it should, as problem details.

One service per store kind serves every test of this module (each test uses its own firm)."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx
import jwt
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from services.client_directory.bootstrap import ClientDirectoryService
from tests.client_directory import support as s
from tests.client_directory.support import topic_of
from tests.harness import SECRET, auth, client_directory, eventually, token

pytestmark = pytest.mark.integration

Service = tuple[ClientDirectoryService, httpx.AsyncClient]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def service(request: pytest.FixtureRequest, broker: Any, stores: Any) -> AsyncIterator[Service]:
    async with client_directory(broker.bootstrap, stores.new(request.param)) as running:
        yield running


def send(producer: KafkaProducer, *events: dict[str, Any] | Iterable[dict[str, Any]]) -> None:
    """Publish CloudEvents as the platform does: keyed by subject, on their type's topic."""
    for item in events:
        for cloud_event in [item] if isinstance(item, dict) else item:
            producer.send(topic_of(cloud_event), key=str(cloud_event["subject"]).encode(),
                          value=json.dumps(cloud_event).encode())
    producer.flush()


def read_back(bootstrap: str, topic: str, partner: str) -> list[dict[str, Any]]:
    """Every CloudEvent of the firm on a topic, from the beginning (assign + seek: this
    broker does not complete kafka-python's group join)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=1000, enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, p) for p in range(3)])
    consumer.seek_to_beginning()
    values = [json.loads(record.value) for record in consumer]
    consumer.close()
    return [v for v in values if v.get("partnerid") == partner]


def firm() -> str:
    return f"firm-{uuid.uuid4().hex[:8]}"


async def settled(api: httpx.AsyncClient, partner: str, admin: str, expected: dict[str, int]) -> None:
    """Wait until the admin's tab counts say the published facts are all applied."""

    async def counts() -> bool:
        response = await api.get("/v1/clients", headers=auth(admin, partner, "admin"))
        assert response.status_code == 200, response.text
        return {t["id"]: t["count"] for t in response.json()["tabs"]} == expected

    await eventually(counts)


async def seed_every_state(producer: KafkaProducer, api: httpx.AsyncClient, f: str) -> None:
    """ada (admin), chloe (accountant, assigned to some), otto (accountant, assigned to none),
    and a client in every state."""
    send(producer,
         s.member_added(f, "ada", "Ada Admin", role="admin"), s.member_added(f, "chloe", "Chloé Comptable"),
         s.member_added(f, "otto", "Otto"),
         s.invited(f, "invited", "Invited SA"),
         s.onboarding(f, "onboarding", "Onboarding SA"),
         s.onboarding(f, "onboarding-mine", "Onboarding mine"), s.assigned(f, "onboarding-mine", "chloe"),
         s.onboarding(f, "failed-mine", "Failed mine"), s.failed(f, "failed-mine"),
         s.assigned(f, "failed-mine", "chloe"),
         s.connected(f, "connected", "Connected SA"),
         s.connected(f, "connected-mine", "Connected mine"), s.assigned(f, "connected-mine", "chloe"),
         s.metrics(f, "connected-mine", 4, amount="1234.50", ready=2),
         s.connected(f, "connected-ada", "Connected ada"), s.assigned(f, "connected-ada", "ada"),
         s.connected(f, "disconnected", "Disconnected SA"), s.disconnected(f, "disconnected"))
    await settled(api, f, "ada", {"invitations": 1, "onboarding": 3, "mine": 1, "all": 3})

    async def chloe_sees_hers() -> bool:
        response = await api.get("/v1/clients", params={"tab": "onboarding"}, headers=auth("chloe", f, "accountant"))
        return len(response.json()["items"]) == 2

    await eventually(chloe_sees_hers)


# --- role x tab x client state ---------------------------------------------------------------------

TABLE = [
    # who, tab, status code, ids on the tab (ascending by name)
    ("ada", "invitations", 200, ["invited"]),
    ("ada", "onboarding", 200, ["failed-mine", "onboarding-mine", "onboarding"]),
    ("ada", "mine", 200, ["connected-ada"]),
    ("ada", "all", 200, ["connected-ada", "connected-mine", "connected"]),
    ("chloe", "invitations", 403, []),
    ("chloe", "onboarding", 200, ["failed-mine", "onboarding-mine"]),
    ("chloe", "mine", 200, ["connected-mine"]),
    ("chloe", "all", 403, []),
    ("otto", "onboarding", 200, []),  # hidden from his tabs, but asked for: empty
    ("otto", "mine", 200, []),
]
TABS = {
    "ada": [{"id": "invitations", "count": 1}, {"id": "onboarding", "count": 3}, {"id": "mine", "count": 1},
            {"id": "all", "count": 3}],
    "chloe": [{"id": "onboarding", "count": 2}, {"id": "mine", "count": 1}],
    "otto": [{"id": "mine", "count": 0}],
}
# Which clients each caller may open (details, notifications); go only answers for connected ones.
VISIBLE = {
    "ada": {"invited", "onboarding", "onboarding-mine", "failed-mine", "connected", "connected-mine",
            "connected-ada"},
    "chloe": {"onboarding-mine", "failed-mine", "connected-mine"},
    "otto": set(),
}
CLIENTS = ["invited", "onboarding", "onboarding-mine", "failed-mine", "connected", "connected-mine", "connected-ada",
           "disconnected", "never-heard-of"]


def caller(who: str, partner: str) -> dict[str, str]:
    return auth(who, partner, "admin" if who == "ada" else "accountant")


async def test_each_role_sees_exactly_its_tabs_and_clients(service: Service, producer: KafkaProducer) -> None:
    _, api = service
    f = firm()
    await seed_every_state(producer, api, f)

    for who, tab, status, ids in TABLE:
        response = await api.get("/v1/clients", params={"tab": tab}, headers=caller(who, f))
        assert response.status_code == status, (who, tab, response.text)
        if status == 200:
            page = response.json()
            assert [i["client_id"] for i in page["items"]] == ids, (who, tab)
            assert page["tab"] == tab and page["tabs"] == TABS[who], (who, tab)
        else:
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["detail"] == f"the {tab} tab is not for the accountant role"

    for who in ("ada", "chloe", "otto"):
        default = (await api.get("/v1/clients", headers=caller(who, f))).json()
        assert default["tab"] == "mine"
        for client_id in CLIENTS:
            details = await api.get(f"/v1/clients/{client_id}", headers=caller(who, f))
            go = await api.get(f"/v1/clients/{client_id}/go", headers=caller(who, f))
            if client_id in VISIBLE[who]:
                assert details.status_code == 200, (who, client_id, details.text)
                connected = client_id.startswith("connected")
                assert go.status_code == (200 if connected else 409), (who, client_id, go.text)
            else:
                assert details.status_code == go.status_code == 404, (who, client_id)

    item = (await api.get("/v1/clients/connected-mine", headers=caller("chloe", f))).json()
    assert item == {
        "client_id": "connected-mine", "name": "Connected mine", "status": "connected", "missing_receipts": 4,
        "ready_to_export": 2, "wallet_balance": {"amount": "1234.50", "currency": "EUR"},
        "accountants": [{"user_id": "chloe", "name": "Chloé Comptable"}],
        "notifications": {"email_enabled": False, "frequency": "weekly", "next_digest_at": None},
    }
    go = (await api.get("/v1/clients/connected-mine/go", headers=caller("chloe", f))).json()
    assert go == {"url": "https://portal.test/clients/connected-mine/account"}
    failed = (await api.get("/v1/clients/failed-mine", headers=caller("ada", f))).json()
    assert failed["status"] == "verification_failed"


async def test_search_filter_sort_and_paging_through_the_api(service: Service, producer: KafkaProducer) -> None:
    _, api = service
    f = firm()
    names = {"c1": "Fabrice", "c2": "Élodie", "c3": "Edgar", "c4": "Client 10", "c5": "Client 2",
             "c6": "Société Générale"}
    send(producer, s.member_added(f, "ada", "Ada", role="admin"),
         *[s.connected(f, c, name) for c, name in names.items()],
         s.metrics(f, "c2", 1), s.metrics(f, "c6", 5), s.metrics(f, "c1", 0))
    await settled(api, f, "ada", {"mine": 0, "all": 6})

    async def ids(**params: Any) -> list[str]:
        found: list[str] = []
        cursor = None
        while True:
            query = {"tab": "all", "limit": 2, **params, **({"cursor": cursor} if cursor else {})}
            response = await api.get("/v1/clients", params=query, headers=auth("ada", f, "admin"))
            assert response.status_code == 200, response.text
            found += [i["client_id"] for i in response.json()["items"]]
            cursor = response.json()["next_cursor"]
            if cursor is None:
                return found

    assert [names[c] for c in await ids()] == ["Client 2", "Client 10", "Edgar", "Élodie", "Fabrice",
                                               "Société Générale"]
    assert await ids(sort="-name") == (await ids())[::-1]
    assert await ids(q="societe") == ["c6"]
    assert await ids(q="É", missing_receipts="true", sort="-name") == ["c6", "c2"]


async def test_facts_out_of_order_settle_and_illegal_ones_are_recorded_as_rejected(
    service: Service, producer: KafkaProducer
) -> None:
    running, api = service
    f = firm()
    # Figures before the client, an assignment before the member, a fact about no client.
    never = s.verified(f, "never-onboarded")
    send(producer, s.metrics(f, "c1", 3), s.onboarding(f, "c1", "Acme"), s.verified(f, "c1"),
         s.assigned(f, "c1", "late"), never, s.member_added(f, "ada", "Ada", role="admin"))
    await settled(api, f, "ada", {"mine": 0, "all": 1})
    send(producer, s.member_added(f, "late", "Late Comer"))

    async def assigned_shows() -> dict[str, Any] | None:
        item = (await api.get("/v1/clients/c1", headers=auth("ada", f, "admin"))).json()
        return item if item["accountants"] else None

    item = await eventually(assigned_shows)
    assert item["accountants"] == [{"user_id": "late", "name": "Late Comer"}]
    assert item["missing_receipts"] == 3
    received: Any = running.directory.inbox.inbox_entry(never["id"])
    reason = f"client never-onboarded of {f} was never invited or onboarded"
    assert (received.outcome, received.reason) == ("rejected", reason)


# --- commands -------------------------------------------------------------------------------------------

async def test_every_command_answers_with_its_result_reads_it_back_and_publishes_it_once(
    service: Service, producer: KafkaProducer, broker: Any
) -> None:
    _, api = service
    f = firm()
    admin, chloe = auth("ada", f, "admin"), auth("chloe", f, "accountant")
    send(producer, s.member_added(f, "ada", "Ada", role="admin"), s.member_added(f, "chloe", "Chloé"),
         s.invited(f, "inv-1", "Accept me"), s.invited(f, "inv-2", "Decline me"), s.connected(f, "c1", "Acme"))
    await settled(api, f, "ada", {"invitations": 2, "mine": 0, "all": 1})

    accepted = await api.post("/v1/invitations/inv-1/accept", headers=admin)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "connected" and accepted.json()["client_id"] == "inv-1"
    page = (await api.get("/v1/clients", params={"tab": "all"}, headers=admin)).json()
    assert [i["client_id"] for i in page["items"]] == ["inv-1", "c1"]  # "Accept me" < "Acme"
    assert (await api.post("/v1/invitations/inv-1/accept", headers=admin)).status_code == 409

    declined = await api.post("/v1/invitations/inv-2/decline", headers=admin)
    assert declined.status_code == 204 and declined.content == b""
    assert (await api.get("/v1/clients/inv-2", headers=admin)).status_code == 404
    page = (await api.get("/v1/clients", params={"tab": "invitations"}, headers=admin)).json()
    assert page["items"] == [] and [t["id"] for t in page["tabs"]] == ["mine", "all"]

    put = await api.put("/v1/clients/c1/accountants/chloe", headers=admin)
    assert put.status_code == 200, put.text
    assert put.json()["accountants"] == [{"user_id": "chloe", "name": "Chloé"}]
    assert [i["client_id"] for i in (await api.get("/v1/clients", headers=chloe)).json()["items"]] == ["c1"]
    assert (await api.put("/v1/clients/c1/accountants/chloe", headers=admin)).status_code == 200  # no change
    for stranger in ("nobody", "ada-of-another-firm"):
        refused = await api.put(f"/v1/clients/c1/accountants/{stranger}", headers=admin)
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"] == [{"location": "path.user_id",
                                             "message": f"{stranger} is not a member of this firm"}]

    setting = await api.put("/v1/clients/c1/notifications", headers=chloe,
                            json={"email_enabled": True, "frequency": "daily"})
    assert setting.status_code == 200 and setting.json() == {"email_enabled": True, "frequency": "daily"}
    details = (await api.get("/v1/clients/c1", headers=chloe)).json()
    assert details["notifications"] == {**setting.json(), "next_digest_at": details["notifications"]["next_digest_at"]}
    assert details["notifications"]["next_digest_at"]  # v1.1: when the first digest covering it goes out

    body = {"tasks": ["missing_receipts", "wallet_balance"], "comment": "Merci !"}
    first = await api.post("/v1/clients/c1/reminders", headers={**admin, "Idempotency-Key": "k-1"}, json=body)
    again = await api.post("/v1/clients/c1/reminders", headers={**admin, "Idempotency-Key": "k-1"}, json=body)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    reused = await api.post("/v1/clients/c1/reminders", headers={**admin, "Idempotency-Key": "k-1"},
                            json={"tasks": ["ready_to_export"]})
    assert reused.status_code == 422
    other = await api.post("/v1/clients/c1/reminders", headers=admin, json={"tasks": ["ready_to_export"]})
    assert other.status_code == 202 and other.json() != first.json()

    removed = await api.delete("/v1/clients/c1/accountants/chloe", headers=admin)
    assert removed.status_code == 200 and removed.json()["accountants"] == []
    assert (await api.get("/v1/clients", headers=chloe)).json()["items"] == []
    assert (await api.get("/v1/clients/c1", headers=chloe)).status_code == 404

    expected_directory = [
        ("client.invitation_accepted.v1", {"client_id": "inv-1", "by": "ada"}),
        ("client.invitation_declined.v1", {"client_id": "inv-2", "by": "ada"}),
        ("client.accountant_assigned.v1", {"client_id": "c1", "user_id": "chloe"}),
        ("client.accountant_unassigned.v1", {"client_id": "c1", "user_id": "chloe"}),
    ]
    expected_notifications = [
        ("notification.preference_set.v1",
         {"client_id": "c1", "user_id": "chloe", "email_enabled": True, "frequency": "daily"}),
        ("notification.reminder_requested.v1", {"reminder_id": first.json()["reminder_id"], "client_id": "c1",
                                                "requested_by": "ada", **body}),
        ("notification.reminder_requested.v1", {"reminder_id": other.json()["reminder_id"], "client_id": "c1",
                                                "requested_by": "ada", "tasks": ["ready_to_export"], "comment": ""}),
    ]

    async def published(topic: str, count: int) -> list[dict[str, Any]] | None:
        events = await asyncio.to_thread(read_back, broker.bootstrap, topic, f)
        return events if len(events) >= count else None

    directory_events = await eventually(lambda: published("portal.client-directory", 4))
    notification_events = await eventually(lambda: published("portal.notifications", 3))
    await asyncio.sleep(1.0)  # a second copy, if any, would be there by now
    directory_events = await asyncio.to_thread(read_back, broker.bootstrap, "portal.client-directory", f)
    notification_events = await asyncio.to_thread(read_back, broker.bootstrap, "portal.notifications", f)
    for events, expected in ((directory_events, expected_directory), (notification_events, expected_notifications)):
        assert sorted((e["type"], json.dumps(e["data"], sort_keys=True)) for e in events) == sorted(
            (t, json.dumps(d, sort_keys=True)) for t, d in expected)
        for e in events:
            assert e["specversion"] == "1.0" and e["subject"] == e["data"]["client_id"]
            assert e["source"] == "/partner-portal/client-directory" and e["datacontenttype"] == "application/json"
    assert len({e["id"] for e in directory_events + notification_events}) == 7


# --- security and validation ------------------------------------------------------------------------------

def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def bad_tokens(f: str) -> dict[str, str | None]:
    good = token("ada", f, "admin")
    head, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return {
        "no token": None,
        "not bearer": f"Basic {base64.b64encode(b'ada:secret').decode()}",
        "empty bearer": "Bearer",
        "garbage": "Bearer not.a.jwt",
        "bad signature": "Bearer " + token("ada", f, "admin", secret="another-secret-that-is-long-enough!!"),
        "expired": "Bearer " + token("ada", f, "admin", expires_in=-10),
        "alg none": "Bearer " + _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(claims) + ".",
        "alg HS512": "Bearer " + jwt.encode(claims, SECRET, algorithm="HS512"),
        "tampered claims": f"Bearer {head}.{_b64({**claims, 'partner_id': 'other-firm'})}.{signature}",
        "unknown role": "Bearer " + token("ada", f, "owner"),
        "no partner": "Bearer " + jwt.encode({"sub": "ada", "role": "admin", "exp": claims["exp"]}, SECRET),
        "no exp": "Bearer " + jwt.encode({"sub": "ada", "role": "admin", "partner_id": f}, SECRET),
    }


ENDPOINTS = [
    ("GET", "/v1/clients", None),
    ("GET", "/v1/clients/{c}", None),
    ("GET", "/v1/clients/{c}/go", None),
    ("POST", "/v1/invitations/{c}/accept", None),
    ("POST", "/v1/invitations/{c}/decline", None),
    # Another member's assignment (an accountant may unassign only themselves: test_self_unassign).
    ("PUT", "/v1/clients/{c}/accountants/ada", None),
    ("DELETE", "/v1/clients/{c}/accountants/ada", None),
    ("PUT", "/v1/clients/{c}/notifications", {"email_enabled": True, "frequency": "weekly"}),
    ("POST", "/v1/clients/{c}/reminders", {"tasks": ["wallet_balance"]}),
]
ADMIN_ONLY = {"/v1/invitations/{c}/accept", "/v1/invitations/{c}/decline", "/v1/clients/{c}/accountants/ada",
              "/v1/clients/{c}/reminders"}


async def test_wrong_tokens_roles_firms_and_ids_get_401_403_404_and_nothing_leaks(
    service: Service, producer: KafkaProducer
) -> None:
    _, api = service
    f, other = firm(), firm()
    send(producer, s.member_added(f, "ada", "Ada", role="admin"), s.member_added(f, "chloe", "Chloé"),
         s.invited(f, "inv", "Invitation"), s.connected(f, "c1", "Acme"), s.assigned(f, "c1", "chloe"),
         s.member_added(other, "eve", "Eve", role="admin"), s.member_added(other, "chloe", "Other Chloé"),
         s.connected(other, "theirs", "Theirs"), s.invited(other, "their-inv", "Their invitation"))
    await settled(api, f, "ada", {"invitations": 1, "mine": 0, "all": 1})
    await settled(api, other, "eve", {"invitations": 1, "mine": 0, "all": 1})

    async def call(method: str, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
        return await api.request(method, path, headers=headers, json=body)

    for label, authorization in bad_tokens(f).items():
        headers = {"Authorization": authorization} if authorization is not None else {}
        for method, path, body in ENDPOINTS:
            response = await call(method, path.format(c="c1"), body, headers)
            assert response.status_code == 401, (label, method, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["www-authenticate"].startswith("Bearer")
    lowercase = {"Authorization": "bearer " + token("ada", f, "admin")}
    assert (await api.get("/v1/clients", headers=lowercase)).status_code == 200

    # An accountant may read and set their own notifications, nothing an admin alone may do.
    for method, path, body in ENDPOINTS:
        response = await call(method, path.format(c="c1"), body, auth("chloe", f, "accountant"))
        expected = 403 if path in ADMIN_ONLY else 200
        assert response.status_code == expected, (method, path, response.text)

    # Another firm's ids, with a valid token of this firm (admin and accountant): 404, like
    # ids that exist nowhere; and another firm's token sees none of this firm's clients.
    for who, role in (("ada", "admin"), ("chloe", "accountant")):
        for client_id in ("theirs", "their-inv", "nowhere"):
            for method, path, body in ENDPOINTS[1:]:
                if role == "accountant" and path in ADMIN_ONLY:
                    continue
                response = await call(method, path.format(c=client_id), body, auth(who, f, role))
                assert response.status_code == 404, (who, method, path, client_id, response.text)
                assert client_id in response.json()["detail"] or "no such client" in response.json()["detail"]
    for method, path, body in ENDPOINTS[1:]:
        response = await call(method, path.format(c="c1"), body, auth("eve", other, "admin"))
        assert response.status_code == 404, (method, path, response.text)
    for tab in ("invitations", "onboarding", "mine", "all"):
        page = (await api.get("/v1/clients", params={"tab": tab}, headers=auth("eve", other, "admin"))).json()
        assert all(i["client_id"] in ("theirs", "their-inv") for i in page["items"])
    # Their Chloé is not ours, though the user id is the same.
    theirs = (await api.get("/v1/clients", headers=auth("chloe", other, "accountant"))).json()
    assert theirs["items"] == []
    # Nothing above changed anything.
    page = (await api.get("/v1/clients", params={"tab": "all"}, headers=auth("ada", f, "admin"))).json()
    assert [(i["client_id"], [a["user_id"] for a in i["accountants"]]) for i in page["items"]] == [("c1", ["chloe"])]


BAD_REQUESTS: list[tuple[str, str, Any, str]] = [
    ("GET", "/v1/clients?tab=everything", None, "query.tab"),
    ("GET", "/v1/clients?limit=0", None, "query.limit"),
    ("GET", "/v1/clients?limit=201", None, "query.limit"),
    ("GET", "/v1/clients?limit=ten", None, "query.limit"),
    ("GET", "/v1/clients?sort=date", None, "query.sort"),
    ("GET", "/v1/clients?missing_receipts=maybe", None, "query.missing_receipts"),
    ("GET", "/v1/clients?cursor=bm90LWEtY3Vyc29y", None, "query.cursor"),
    ("GET", "/v1/clients?cursor=%%%", None, "query.cursor"),
    ("GET", "/v1/clients?q=" + "x" * 201, None, "query.q"),
    ("GET", "/v1/clients?q=a%00b", None, "query.q"),
    ("GET", "/v1/clients/a%00b", None, "path.client_id"),
    ("GET", "/v1/clients/" + "x" * 201, None, "path.client_id"),
    ("PUT", "/v1/clients/c1/notifications", {"email_enabled": True}, "body.frequency"),
    ("PUT", "/v1/clients/c1/notifications", {"email_enabled": True, "frequency": "hourly"}, "body.frequency"),
    ("PUT", "/v1/clients/c1/notifications", {"email_enabled": "perhaps", "frequency": "daily"}, "body.email_enabled"),
    ("PUT", "/v1/clients/c1/notifications", {"email_enabled": True, "frequency": "daily", "x": 1}, "body.x"),
    ("PUT", "/v1/clients/c1/notifications", [], "body"),
    ("PUT", "/v1/clients/c1/notifications", "not json", "body"),
    ("POST", "/v1/clients/c1/reminders", {"tasks": []}, "body.tasks"),
    ("POST", "/v1/clients/c1/reminders", {"tasks": ["sing"]}, "body.tasks.0"),
    ("POST", "/v1/clients/c1/reminders", {"tasks": ["wallet_balance"], "comment": "x" * 4001}, "body.comment"),
    ("POST", "/v1/clients/c1/reminders", None, "body"),
]


async def test_bad_parameters_and_bodies_are_422_problems_naming_what_is_wrong(
    service: Service, producer: KafkaProducer
) -> None:
    _, api = service
    f = firm()
    send(producer, s.member_added(f, "ada", "Ada", role="admin"), s.connected(f, "c1", "Acme"))
    await settled(api, f, "ada", {"mine": 0, "all": 1})
    admin = auth("ada", f, "admin")
    for method, url, body, location in BAD_REQUESTS:
        if body == "not json":
            response = await api.request(method, url, headers={**admin, "content-type": "application/json"},
                                         content=b"{not json")
        else:
            response = await api.request(method, url, headers=admin, json=body)
        assert response.status_code == 422, (method, url, body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == 422 and problem["title"] == "Unprocessable Content"
        assert any(e["location"].startswith(location) for e in problem["errors"]), (url, body, problem)
        assert location in problem["detail"]
    key = {**admin, "Idempotency-Key": "k" * 201}
    response = await api.post("/v1/clients/c1/reminders", headers=key, json={"tasks": ["wallet_balance"]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["location"] == "header.idempotency-key"
    for method, url, status in (("GET", "/v1/nothing-here", 404), ("PATCH", "/v1/clients/c1", 405),
                                ("DELETE", "/v1/clients", 405)):
        response = await api.request(method, url, headers=admin)
        assert response.status_code == status
        assert response.headers["content-type"] == "application/problem+json"


async def test_the_api_documents_itself(service: Service) -> None:
    _, api = service
    spec = (await api.get("/openapi.json")).json()
    assert set(spec["paths"]) >= {
        "/v1/clients", "/v1/clients/{client_id}", "/v1/clients/{client_id}/go", "/v1/invitations/{client_id}/accept",
        "/v1/invitations/{client_id}/decline", "/v1/clients/{client_id}/accountants/{user_id}",
        "/v1/clients/{client_id}/notifications", "/v1/clients/{client_id}/reminders", "/healthz", "/readyz",
        "/metrics"}
    assert (await api.get("/docs")).status_code == 200
