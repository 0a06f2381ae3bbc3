"""Issue 18 through the real broker, on SQLite and on PostgreSQL: bulk assignment, the CSV
export, the reminder history with the notifier's real outcomes, and the live stream.

One client directory per store kind serves every test of this module (each test uses its own
firm); the reminder test starts a notifier beside it, on the session's SMTP sink."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from services.client_directory.bootstrap import ClientDirectoryService
from tests.client_directory import support as s
from tests.harness import auth, client_directory, eventually, notifier, token
from tests.integration.test_client_directory_api import firm, read_back, send, settled

pytestmark = pytest.mark.integration

Service = tuple[ClientDirectoryService, httpx.AsyncClient]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def service(request: pytest.FixtureRequest, broker: Any, stores: Any) -> AsyncIterator[Service]:
    async with client_directory(broker.bootstrap, stores.new(request.param)) as running:
        yield running


async def seed(producer: KafkaProducer, api: httpx.AsyncClient, f: str, clients: int = 4) -> None:
    """ada (admin), chloe and otto (accountants), `clients` connected clients c0, c1, ..."""
    send(producer, s.member_added(f, "ada", "Ada Admin", role="admin"), s.member_added(f, "chloe", "Chloé"),
         s.member_added(f, "otto", "Otto"), *(s.connected(f, f"c{i}", f"Client {i}") for i in range(clients)))
    await settled(api, f, "ada", {"mine": 0, "all": clients})




# --- 3. bulk assignment ------------------------------------------------------------------------------


async def test_bulk_assignment_answers_what_it_did_once(service: Service, producer: KafkaProducer, broker: Any) -> None:
    _, api = service
    f = firm()
    await seed(producer, api, f)
    admin = auth("ada", f, "admin")
    body = {"assign": ["c0", "c1", "gone"], "unassign": ["c2"]}
    first = await api.post("/v1/accountants/chloe/clients", headers=admin, json=body)
    assert first.status_code == 200, first.text
    assert first.json() == {"assigned": ["c0", "c1"], "unassigned": ["c2"], "not_found": ["gone"]}
    mine = await api.get("/v1/clients", params={"tab": "mine"}, headers=auth("chloe", f, "accountant"))
    assert [i["client_id"] for i in mine.json()["items"]] == ["c0", "c1"]  # read-your-writes

    again = await api.post("/v1/accountants/chloe/clients", headers=admin, json=body)
    assert again.json() == first.json()
    events = await eventually(lambda: _assignments(broker.bootstrap, f, 2))
    assert sorted(e["data"]["client_id"] for e in events) == ["c0", "c1"]  # one each, not repeated

    unassign = await api.post("/v1/accountants/chloe/clients", headers=admin, json={"unassign": ["c0"]})
    assert unassign.json() == {"assigned": [], "unassigned": ["c0"], "not_found": []}


async def _assignments(bootstrap: str, f: str, at_least: int) -> list[dict[str, Any]] | None:
    found = [e for e in await asyncio.to_thread(read_back, bootstrap, "portal.client-directory", f)
             if e["type"].startswith("client.accountant_")]
    return found if len(found) >= at_least else None


async def test_bulk_assignment_limits_and_refusals(service: Service, producer: KafkaProducer) -> None:
    _, api = service
    f = firm()
    await seed(producer, api, f, clients=1)
    admin = auth("ada", f, "admin")
    many = [f"client-{i:03d}-" + "x" * 180 for i in range(500)]  # ~100 KB: above the 32 KiB default
    big = await api.post("/v1/accountants/chloe/clients", headers=admin, json={"assign": many})
    assert big.status_code == 200, big.text[:300]
    assert len(big.json()["not_found"]) == 500
    over = await api.post("/v1/accountants/chloe/clients", headers=admin, json={"assign": many, "unassign": ["c0"]})
    assert over.status_code == 422 and over.json()["errors"][0]["location"] == "body"
    both = await api.post("/v1/accountants/chloe/clients", headers=admin, json={"assign": ["c0"], "unassign": ["c0"]})
    assert both.status_code == 422
    stranger = await api.post("/v1/accountants/nobody/clients", headers=admin, json={"assign": ["c0"]})
    assert stranger.status_code == 422 and stranger.json()["errors"][0]["location"] == "path.user_id"
    accountant = await api.post("/v1/accountants/chloe/clients", headers=auth("chloe", f, "accountant"),
                                json={"assign": ["c0"]})
    assert accountant.status_code == 403


# --- 4. export ----------------------------------------------------------------------------------------


async def test_export_streams_the_filtered_tab_as_csv(service: Service, producer: KafkaProducer) -> None:
    _, api = service
    f = firm()
    send(producer, s.member_added(f, "ada", "Ada Admin", role="admin"), s.member_added(f, "chloe", "Chloé"),
         s.connected(f, "c1", "=SUM(A1)"), s.connected(f, "c2", "Beta"), s.assigned(f, "c2", "chloe"),
         s.metrics(f, "c2", 3, amount="-5.00", ready=2), s.connected(f, "c3", "Gamma"))
    await settled(api, f, "ada", {"mine": 0, "all": 3})
    await eventually(lambda: _has_metrics(api, f))
    response = await api.get("/v1/clients.csv", params={"tab": "all", "sort": "-name"}, headers=auth("ada", f, "admin"))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["client_id", "name", "status", "missing_receipts", "ready_to_export", "wallet_amount",
                       "wallet_currency", "accountants"]
    assert [r[1] for r in rows[1:]] == ["Gamma", "Beta", "'=SUM(A1)"]
    assert rows[2] == ["c2", "Beta", "connected", "3", "2", "-5.00", "EUR", "Chloé"]
    filtered = await api.get("/v1/clients.csv", params={"tab": "all", "missing_receipts": "true", "q": "bet"},
                             headers=auth("ada", f, "admin"))
    assert [r[0] for r in csv.reader(io.StringIO(filtered.text))] == ["client_id", "c2"]
    forbidden = await api.get("/v1/clients.csv", params={"tab": "all"}, headers=auth("chloe", f, "accountant"))
    assert forbidden.status_code == 403
    assert (await api.get("/v1/clients.csv")).status_code == 401


async def _has_metrics(api: httpx.AsyncClient, f: str) -> bool:
    item = (await api.get("/v1/clients/c2", headers=auth("ada", f, "admin"))).json()
    return item.get("missing_receipts") == 3


# --- 2. reminder history --------------------------------------------------------------------------------


async def test_an_admins_reminder_shows_each_accountants_outcome(
        service: Service, producer: KafkaProducer, broker: Any, stores: Any, smtp: Any, request: Any) -> None:
    directory, api = service
    f = firm()
    kind = directory.settings.store.kind
    smtp_port, _ = smtp
    async with notifier(broker.bootstrap, stores.new(kind), smtp_port):
        await seed(producer, api, f, clients=1)
        send(producer, s.assigned(f, "c0", "chloe"), s.assigned(f, "c0", "otto"))
        admin = auth("ada", f, "admin")
        await eventually(lambda: _accountants(api, f, 2))
        posted = await api.post("/v1/clients/c0/reminders", headers=admin,
                                json={"tasks": ["missing_receipts"], "comment": "Merci"})
        assert posted.status_code == 202, posted.text
        reminder_id = posted.json()["reminder_id"]

        history = await api.get("/v1/clients/c0/reminders", headers=admin)
        item = history.json()["items"][0]
        assert item["reminder_id"] == reminder_id and item["requested_by"] == {"user_id": "ada", "name": "Ada Admin"}
        assert item["tasks"] == ["missing_receipts"] and item["comment"] == "Merci"
        assert {d["user_id"]: d["status"] for d in item["deliveries"]} == {"chloe": "pending", "otto": "pending"}

        async def delivered() -> dict[str, Any] | None:
            got = await api.get("/v1/clients/c0/reminders", headers=auth("chloe", f, "accountant"))
            found = got.json()["items"][0]
            return found if all(d["status"] == "sent" for d in found["deliveries"]) else None

        done = await eventually(delivered, timeout=60)
        assert {(d["user_id"], d["name"]) for d in done["deliveries"]} == {("chloe", "Chloé"), ("otto", "Otto")}
        assert all(d["at"] for d in done["deliveries"])
    hidden = await api.get("/v1/clients/c0/reminders", headers=auth("nobody", f, "accountant"))
    assert hidden.status_code == 403


async def _accountants(api: httpx.AsyncClient, f: str, n: int) -> bool:
    item = (await api.get("/v1/clients/c0", headers=auth("ada", f, "admin"))).json()
    return len(item.get("accountants", [])) == n


# --- 5. the live stream ------------------------------------------------------------------------------


class Stream:
    """An open GET /v1/stream, read event by event."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            event: dict[str, Any] = {}
            async for line in self.lines:
                if not line:
                    if "data" in event:
                        return event
                    event = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    event[name] = json.loads(value) if name == "data" else value
            raise AssertionError("the stream ended")

        return await asyncio.wait_for(read(), timeout)


def stream_url(f: str, user: str = "ada", role: str = "admin") -> str:
    return f"/v1/stream?access_token={token(user, f, role)}"


async def test_a_client_verified_on_the_platform_reaches_an_open_stream_within_a_second(
        service: Service, producer: KafkaProducer) -> None:
    _, api = service
    f = firm()
    await seed(producer, api, f, clients=1)
    send(producer, s.onboarding(f, "new", "Newco"))
    await settled(api, f, "ada", {"onboarding": 1, "mine": 0, "all": 1})
    async with api.stream("GET", stream_url(f)) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        stream = Stream(response)
        first = await stream.next()
        assert first["event"] == "tabs" and int(first["id"]) == first["data"]["position"]
        started = time.monotonic()
        send(producer, s.verified(f, "new"))
        changed = await stream.next(timeout=5.0)
        elapsed = time.monotonic() - started
        assert changed["data"]["clients"] == ["new"]
        assert {t["id"]: t["count"] for t in changed["data"]["tabs"]}["all"] == 2
        assert elapsed < 1.0, f"{elapsed:.2f}s"


async def test_streams_per_member_are_bounded_and_resume_from_last_event_id(
        service: Service, producer: KafkaProducer) -> None:
    _, api = service
    f = firm()
    await seed(producer, api, f, clients=2)
    headers = auth("chloe", f, "accountant")
    opened = [await api.send(api.build_request("GET", "/v1/stream", headers=headers), stream=True) for _ in range(5)]
    try:
        assert all(r.status_code == 200 for r in opened)
        sixth = await api.get("/v1/stream", headers=headers)
        assert sixth.status_code == 429 and sixth.headers["retry-after"]
    finally:
        for r in opened:
            await r.aclose()

    async def reopened() -> bool:  # the slots are freed when the server sees the streams go
        response = await api.send(api.build_request("GET", "/v1/stream", headers=headers), stream=True)
        await response.aclose()
        return response.status_code == 200

    await eventually(reopened, timeout=10)

    async with api.stream("GET", "/v1/stream", headers=headers) as response:
        stream = Stream(response)
        last = (await stream.next())["id"]
        send(producer, s.assigned(f, "c0", "chloe"))
        assert (await stream.next())["data"]["clients"] == ["c0"]
    send(producer, s.assigned(f, "c1", "chloe"))  # while nobody listens
    await eventually(lambda: _mine(api, f, 2))
    async with api.stream("GET", "/v1/stream", headers={**headers, "Last-Event-ID": last}) as response:
        missed = await Stream(response).next()
        assert set(missed["data"]["clients"]) == {"c0", "c1"} and int(missed["id"]) > int(last)
        assert {t["id"]: t["count"] for t in missed["data"]["tabs"]}["mine"] == 2
    bad = await api.get("/v1/stream", params={"access_token": "not-a-token"})
    assert bad.status_code == 401


async def _mine(api: httpx.AsyncClient, f: str, n: int) -> bool:
    page = (await api.get("/v1/clients", params={"tab": "mine"}, headers=auth("chloe", f, "accountant"))).json()
    return len(page["items"]) == n


async def test_a_stream_ends_when_its_token_expires(service: Service, producer: KafkaProducer) -> None:
    _, api = service
    f = firm()
    await seed(producer, api, f, clients=1)
    started = time.monotonic()
    async with api.stream("GET", f"/v1/stream?access_token={token('ada', f, 'admin', expires_in=2)}") as response:
        assert response.status_code == 200
        body = await asyncio.wait_for(response.aread(), timeout=10)  # the server ends it
    assert b"event: tabs" in body and 0.5 < time.monotonic() - started < 10
