"""What the HTTP layer of the Clients page adds to the queries, made cheap: verified tokens are
remembered (and still refused once expired), a page is written as JSON without being
validated against its model again (the same bytes the model wrote), and the accountants of a
page are looked up by client even on a store without planner statistics."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from fastapi import HTTPException

from contracts.api import ClientPage
from services.client_directory.adapters.auth import TokenVerifier, bearer_token
from services.client_directory.adapters.auth import verify as verify_in_full
from services.client_directory.adapters.http import page_json
from services.client_directory.projections.clients import Caller, accountants_query
from tests.client_directory.support import (
    Directory,
    accountant,
    admin,
    assigned,
    connected,
    failed,
    firm,
    invited,
    member_added,
    metrics,
    onboarding,
)
from tests.harness import SECRET, token

NOW = 1_800_000_000


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def bearer(claims: dict[str, Any], secret: str = SECRET) -> str:
    return "Bearer " + jwt.encode(claims, secret, algorithm="HS256")


def refused(verify: Any, authorization: str | None) -> str:
    with pytest.raises(HTTPException) as raised:
        verify(authorization)
    assert raised.value.status_code == 401
    assert raised.value.headers == {"WWW-Authenticate": 'Bearer realm="partner-portal"'}
    return str(raised.value.detail)


def test_a_remembered_token_is_refused_once_it_expires() -> None:
    clock = Clock(NOW)
    verify = TokenVerifier(SECRET, clock=clock)
    # PyJWT reads the time itself on the first use: the token is valid now, for a minute.
    authorization = "Bearer " + token("u", "f", "admin", expires_in=60)
    expires = jwt.decode(authorization[7:], SECRET, algorithms=["HS256"])["exp"]
    clock.now = expires - 30
    assert verify(authorization) == Caller("f", "u", "admin")
    assert verify.remembered() == 1
    clock.now = expires - 1
    assert verify(authorization) == Caller("f", "u", "admin")
    clock.now = expires  # `exp <= now` is expired, as PyJWT has it
    assert refused(verify, authorization) == "token expired"
    clock.now = expires + 3600
    assert refused(verify, authorization) == "token expired"


def test_an_expired_token_never_seen_is_refused_as_before() -> None:
    verify = TokenVerifier(SECRET)
    authorization = "Bearer " + token("u", "f", "admin", expires_in=-10)
    assert refused(verify, authorization) == "token expired"
    assert verify.remembered() == 0


def test_refused_tokens_are_not_remembered_and_say_why_every_time() -> None:
    verify = TokenVerifier(SECRET)
    exp = int(time.time()) + 3600
    payload = base64.urlsafe_b64encode(json.dumps(
        {"sub": "u", "partner_id": "f", "role": "admin", "exp": exp}).encode()).decode().rstrip("=")
    cases = {
        None: "missing bearer token",
        "Basic abc": "missing bearer token",
        "Bearer ": "missing bearer token",
        bearer({"sub": "u", "partner_id": "f", "role": "admin", "exp": exp}, "another-secret-long-enough-for-hs256"):
            "invalid token: Signature verification failed",
        f"Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.":
            "invalid token: The specified alg value is not allowed",
        bearer({"sub": "u", "partner_id": "f", "role": "owner", "exp": exp}):
            "invalid token: role must be one of admin, accountant",
        bearer({"sub": "", "partner_id": "f", "role": "admin", "exp": exp}):
            "invalid token: sub, partner_id and role must be non-empty strings",
        bearer({"sub": "u", "role": "admin", "exp": exp}):
            'invalid token: Token is missing the "partner_id" claim',
    }
    for authorization, reason in cases.items():
        for _ in range(2):
            assert refused(verify, authorization) == reason
            with pytest.raises(HTTPException) as uncached:
                verify_in_full(bearer_token(authorization), SECRET)
            assert uncached.value.detail == reason
    assert verify.remembered() == 0


def test_a_token_is_remembered_for_its_secret_only_and_the_memory_is_bounded() -> None:
    ours, theirs = TokenVerifier(SECRET, size=3), TokenVerifier("another-secret-long-enough-for-hs256")
    tokens = ["Bearer " + token(f"u{n}", "f", "accountant") for n in range(5)]
    assert ours(tokens[0]) == Caller("f", "u0", "accountant")
    assert refused(theirs, tokens[0]) == "invalid token: Signature verification failed"
    for authorization in tokens:
        ours(authorization)
    assert ours.remembered() == 3
    # The same token with the scheme spelt otherwise, or padded, names the same caller.
    assert ours("  bearer " + tokens[4][7:] + " ") == Caller("f", "u4", "accountant")


def test_a_page_is_written_as_the_model_wrote_it(directory: Directory) -> None:
    f = firm()
    directory.send(member_added(f, "zoe", "Zoé"), member_added(f, "eve", "Ève \"E\" \\ <b>"))
    directory.send(*connected(f, "c1", "Acme ☃ \u2028"), assigned(f, "c1", "zoe"), assigned(f, "c1", "eve"),
                   metrics(f, "c1", 2, amount="-5.5", ready=3))
    directory.send(onboarding(f, "c2", "Without figures"), invited(f, "c3", "Invited"), onboarding(f, "c4", "Failed"),
                   failed(f, "c4"), assigned(f, "c2", "zoe"))
    pages = [directory.page(admin(f), tab) for tab in ("invitations", "onboarding", "all", "mine")]
    pages += [directory.page(admin(f), "onboarding", limit=1), directory.page(accountant(f, "zoe"), "mine"),
              directory.page(accountant(f, "zoe"), "onboarding", q="without", missing_receipts=True)]
    assert any(p["next_cursor"] for p in pages) and any(p["items"] for p in pages)
    for page in pages:
        assert page_json(page) == ClientPage.model_validate(page).model_dump_json().encode()


def test_the_accountants_of_a_page_are_looked_up_by_client_without_statistics(directory: Directory) -> None:
    statement, params = accountants_query("sqlite", "f", ["c1", "c2", "c3"])
    plan = directory.read_model.query("EXPLAIN QUERY PLAN " + statement, params)
    first = str(plan[0]["detail"])
    assert "cd_assignments_client (partner_id=? AND client_id=?)" in first, plan
    assert "INDEXED BY" not in accountants_query("postgresql", "f", ["c1"])[0]
