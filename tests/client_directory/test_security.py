"""Security findings of the client directory, each held by a test that failed before its fix:
no public default secret (1), authorization from current membership and role (3), ids the API
can address (5), JWT claim types and a capped lifetime (6), and cursors that never make a 500.

The service is built by the composition root (bootstrap.py) on a temporary SQLite store and
called in process; its runtime is not started (no broker), facts are fed through the inbox."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
from fastapi import FastAPI

from events.config import ConfigError, KafkaSettings, StoreUrl
from services.client_directory import __main__ as cli
from services.client_directory.adapters.http.deps import current_caller
from services.client_directory.bootstrap import ClientDirectoryService, bootstrap
from services.client_directory.config import DEV_SECRET, Settings
from services.client_directory.projections.clients import Caller
from tests.client_directory.support import (
    Directory,
    assigned,
    connected,
    firm,
    invited,
    member_added,
    member_removed,
    role_changed,
)
from tests.client_directory.test_commands import published

SECRET = "security-test-secret-long-enough-for-hs256"


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    fields: dict[str, Any] = {
        "kafka": KafkaSettings("127.0.0.1:1"), "http_host": "127.0.0.1", "http_port": 8000,
        "store": StoreUrl.parse("CLIENT_DIRECTORY_DB", f"sqlite:///{tmp_path / 'cd.db'}"),
        "jwt_secret": SECRET, "portal_base_url": "https://portal.test", **overrides,
    }
    return Settings(**fields)


def bearer(user: str, partner: str, role: str, *, lifetime: int = 3600, **claims: Any) -> dict[str, str]:
    body = {"sub": user, "partner_id": partner, "role": role, "exp": int(time.time()) + lifetime, **claims}
    return {"Authorization": "Bearer " + jwt.encode(body, SECRET, algorithm="HS256")}


class Http:
    """Requests into the app as a server sends them: the path %-decoded once (as uvicorn does;
    Starlette's TestClient decodes it twice, which would turn %252F into a "/")."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(call())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)


class Portal:
    def __init__(self, tmp_path: Path, **overrides: Any) -> None:
        self.facts = Directory(str(tmp_path / "cd.db"))
        self.service: ClientDirectoryService = bootstrap(settings(tmp_path, **overrides), directory=self.facts.app)
        self.http = Http(self.service.api)
        self.firm = firm()

    def send(self, *events: Any) -> None:
        self.facts.send(*events)
        self.service.projection.catch_up()


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[Portal]:
    made = Portal(tmp_path)
    f = made.firm
    made.send(member_added(f, "ada", "Ada", role="admin"), member_added(f, "chloe", "Chloé"),
              invited(f, "inv", "Invited SA"), connected(f, "c1", "Acme"), assigned(f, "c1", "chloe"))
    yield made
    made.facts.app.close()


# --- finding 1: no public default secret ----------------------------------------------------------

def test_without_a_jwt_secret_the_service_refuses_to_start_unless_in_dev_mode() -> None:
    with pytest.raises(ConfigError, match="PORTAL_JWT_SECRET is not set"):
        Settings.from_env({})
    assert Settings.from_env({"PORTAL_DEV_MODE": "true"}).jwt_secret == DEV_SECRET
    assert Settings.from_env({"PORTAL_JWT_SECRET": SECRET}).jwt_secret == SECRET


def test_every_cli_command_without_a_secret_exits_with_one_line_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("PORTAL_JWT_SECRET", raising=False)
    monkeypatch.delenv("PORTAL_DEV_MODE", raising=False)
    monkeypatch.setenv("CLIENT_DIRECTORY_DB", f"sqlite:///{tmp_path / 'cd.db'}")
    assert cli.main(["events", "show", "--client", "c1"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "PORTAL_JWT_SECRET" in lines[0]


# --- finding 3: authorization from current facts --------------------------------------------------

ADMIN_ROUTES = [
    ("GET", "/v1/clients?tab=all", None),
    ("POST", "/v1/invitations/inv/accept", None),
    ("PUT", "/v1/clients/c1/accountants/chloe", None),
    ("DELETE", "/v1/clients/c1/accountants/chloe", None),
    ("POST", "/v1/clients/c1/reminders", {"tasks": ["missing_receipts"], "comment": "please"}),
]


def test_a_removed_admin_is_refused_at_once_on_every_route(portal: Portal) -> None:
    f = portal.firm
    assert portal.http.get("/v1/clients?tab=all", headers=bearer("ada", f, "admin")).status_code == 200
    portal.send(member_removed(f, "ada"))
    for method, path, body in [*ADMIN_ROUTES, ("GET", "/v1/clients", None), ("GET", "/v1/clients/c1", None)]:
        response = portal.http.request(method, path, json=body, headers=bearer("ada", f, "admin"))
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["detail"] == "you are no longer a member of this firm"
    assert published(portal.facts, f) == []


def test_an_admin_demoted_to_accountant_loses_admin_routes_at_once_and_no_reminder_is_accepted(
        portal: Portal) -> None:
    f = portal.firm
    portal.send(role_changed(f, "ada", "accountant"))
    for method, path, body in ADMIN_ROUTES:
        response = portal.http.request(method, path, json=body, headers=bearer("ada", f, "admin"))
        assert response.status_code == 403, (method, path, response.text)
    assert published(portal.facts, f) == []  # no reminder the notifier would drop
    # Still a member: her own tabs answer, as an accountant's.
    page = portal.http.get("/v1/clients", headers=bearer("ada", f, "admin")).json()
    assert [t["id"] for t in page["tabs"]] == ["mine"]


def test_an_accountant_promoted_to_admin_is_an_admin_with_the_old_token(portal: Portal) -> None:
    f = portal.firm
    portal.send(role_changed(f, "chloe", "admin"))
    response = portal.http.get("/v1/clients?tab=all", headers=bearer("chloe", f, "accountant"))
    assert response.status_code == 200 and [i["client_id"] for i in response.json()["items"]] == ["c1"]


def test_a_removed_accountant_and_a_stranger_with_a_valid_token_are_refused(portal: Portal) -> None:
    f = portal.firm
    portal.send(member_removed(f, "chloe"))
    assert portal.http.get("/v1/clients", headers=bearer("chloe", f, "accountant")).status_code == 403
    stranger = portal.http.get("/v1/clients", headers=bearer("mallory", f, "admin"))
    assert stranger.status_code == 403 and stranger.json()["detail"] == "you are not a member of this firm"


def test_a_reminder_from_a_current_admin_is_still_accepted(portal: Portal) -> None:
    response = portal.http.post("/v1/clients/c1/reminders", json={"tasks": ["missing_receipts"], "comment": "x"},
                                headers=bearer("ada", portal.firm, "admin"))
    assert response.status_code == 202, response.text


def test_tests_can_replace_the_caller_with_dependency_overrides(portal: Portal) -> None:
    async def chloe() -> Caller:
        return Caller(portal.firm, "chloe", "accountant")

    portal.service.api.dependency_overrides[current_caller] = chloe
    try:
        response = portal.http.get("/v1/clients")
    finally:
        portal.service.api.dependency_overrides.clear()
    assert [i["client_id"] for i in response.json()["items"]] == ["c1"]


# --- finding 5: every listed id can be addressed ---------------------------------------------------

@pytest.mark.parametrize("client_id", ["a/b", "/", "..", "."])
def test_an_id_the_api_cannot_address_is_rejected_with_its_reason_and_never_listed(
        portal: Portal, client_id: str) -> None:
    f = portal.firm
    facts = connected(f, client_id, "Slashed SA")
    portal.send(facts)
    outcome, reason = portal.facts.outcome(facts[0])
    assert outcome == "rejected" and "cannot be used in the API" in reason
    items = portal.http.get("/v1/clients?tab=all", headers=bearer("ada", f, "admin")).json()["items"]
    assert client_id not in [i["client_id"] for i in items]


def test_every_listed_client_round_trips_through_the_api(portal: Portal) -> None:
    f = portal.firm
    odd = ["a b", "é%2F", "x?y#z", "50%", "back\\slash", "a/b"]
    portal.send(*(connected(f, client_id, f"Client {client_id}") for client_id in odd))
    admin = bearer("ada", f, "admin")
    listed = [i["client_id"] for i in portal.http.get("/v1/clients?tab=all", headers=admin).json()["items"]]
    assert sorted(listed) == sorted(["c1", *odd[:-1]])
    for client_id in listed:
        path = f"/v1/clients/{quote(client_id, safe='')}"
        opened = portal.http.get(path, headers=admin)
        assert opened.status_code == 200 and opened.json()["client_id"] == client_id, (client_id, opened.text)
        assert portal.http.put(f"{path}/accountants/chloe", headers=admin).status_code == 200


# --- finding 6 (JWT): claim types and lifetime ----------------------------------------------------

def test_a_numeric_string_exp_or_iat_is_refused(portal: Portal) -> None:
    f = portal.firm
    exp = str(int(time.time()) + 600)
    claims = {"sub": "ada", "partner_id": f, "role": "admin"}
    for extra in ({"exp": exp}, {"exp": int(exp), "iat": str(int(time.time()))}, {"exp": float(exp)}):
        token = jwt.encode({**claims, **extra}, SECRET, algorithm="HS256")
        response = portal.http.get("/v1/clients", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (extra, response.text)
        assert "whole number" in response.json()["detail"]


def test_a_token_living_longer_than_the_cap_is_refused_and_the_cap_is_a_setting(
        portal: Portal, tmp_path: Path) -> None:
    f = portal.firm
    assert portal.http.get("/v1/clients", headers=bearer("ada", f, "admin", lifetime=23 * 3600)).status_code == 200
    refused = portal.http.get("/v1/clients", headers=bearer("ada", f, "admin", lifetime=25 * 3600))
    assert refused.status_code == 401 and "exp is more than 86400 s ahead" in refused.json()["detail"]
    assert Settings.from_env({"PORTAL_JWT_SECRET": SECRET,
                              "PORTAL_TOKEN_MAX_LIFETIME_SECONDS": "3600"}).token_max_lifetime_s == 3600
    short = bootstrap(settings(tmp_path / "short", token_max_lifetime_s=3600), directory=portal.facts.app)
    response = Http(short.api).get("/v1/clients", headers=bearer("ada", f, "admin", lifetime=7200))
    assert response.status_code == 401


# --- cursors: any value is a 4xx with a reason ----------------------------------------------------

@pytest.mark.parametrize("raw", [b"[" * 1000, b"{" * 2_000, b"\xff\xfe", b'{"k": 1}', b"null"])
def test_any_cursor_is_a_4xx_with_a_reason_never_a_500(portal: Portal, raw: bytes) -> None:
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")[:4000]
    response = portal.http.get("/v1/clients", params={"tab": "all", "cursor": cursor},
                               headers=bearer("ada", portal.firm, "admin"))
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["location"] == "query.cursor"
