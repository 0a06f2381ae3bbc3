"""Hostile callers, generated from the OpenAPI document (schemathesis): every operation, as
an admin, an accountant, another firm's admin, or with a forged, expired, `alg: none` or no
token, on ids of every state and of both firms. Never a 5xx; every 4xx a problem document
with a reason; another firm's client is never revealed."""

from __future__ import annotations

import base64
import json
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.config import KafkaSettings, StoreUrl
from events.envelope import InboundRecord, parse_record
from services.client_directory.bootstrap import bootstrap, inbox_sink
from services.client_directory.config import Settings
from tests.harness import SECRET, token

pytestmark = pytest.mark.integration

FIRM, OTHER = "firm-a", "firm-b"
A_CLIENTS = {"invited": "a-invited", "onboarding": "a-onboarding", "failed": "a-failed",
             "connected_assigned": "a-connected", "connected": "a-connected-2", "gone": "a-gone", "shared": "shared"}
B_CLIENTS = {"connected": "b-connected", "shared": "shared"}


def seed(service: Any) -> None:
    sink = inbox_sink(service.directory)
    offset = 0

    def send(topic: str, type_: str, partner: str, data: dict[str, Any]) -> None:
        nonlocal offset
        subject = data.get("client_id") or data["user_id"]
        value = json.dumps({"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/seed", "type": type_,
                            "time": datetime.now(UTC).isoformat(), "subject": subject, "partnerid": partner,
                            "data": data}).encode()
        record = InboundRecord(topic, 0, offset, subject.encode(), value)
        sink.apply(topic, 0, [parse_record(record)], offset)
        offset += 1

    for partner, admin in ((FIRM, "a-admin"), (OTHER, "b-admin")):
        send("t", "partner.member.added.v1", partner, {"user_id": admin, "email": f"{admin}@x.test", "name": admin,
                                                      "role": "admin", "locale": "en"})
    send("t", "partner.member.added.v1", FIRM, {"user_id": "a-acc", "email": "a-acc@x.test", "name": "Acc",
                                                "role": "accountant", "locale": "fr"})
    send("t", "client.partner_invited.v1", FIRM, {"client_id": "a-invited", "client_name": "Invited SA"})
    for client in ("a-onboarding", "a-failed", "a-connected", "a-connected-2", "a-gone", "shared"):
        send("t", "client.onboarding_started.v1", FIRM, {"client_id": client, "client_name": f"Société {client}",
                                                         "invited_by": "a-admin"})
    send("t", "client.verification_failed.v1", FIRM, {"client_id": "a-failed", "reason": "no"})
    for client in ("a-connected", "a-connected-2", "a-gone", "shared"):
        send("t", "client.verification_completed.v1", FIRM, {"client_id": client})
    send("t", "client.accountant_assigned.v1", FIRM, {"client_id": "a-connected", "user_id": "a-acc"})
    send("t", "client.accountant_assigned.v1", FIRM, {"client_id": "a-onboarding", "user_id": "a-acc"})
    send("t", "client.disconnected.v1", FIRM, {"client_id": "a-gone"})
    for client in ("b-connected", "shared"):
        send("t", "client.onboarding_started.v1", OTHER, {"client_id": client, "client_name": f"Other {client}",
                                                          "invited_by": "b-admin"})
        send("t", "client.verification_completed.v1", OTHER, {"client_id": client})
    service.projection.catch_up()


def forged(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def tampered(signed: str) -> str:
    """The token with its signature's first character changed. (Its last character carries
    only some bits of the signature: replacing it left the token valid one time in sixteen.)"""
    head, payload, signature = signed.split(".")
    return f"{head}.{payload}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"


CALLERS: dict[str, str | None] = {
    "admin": token("a-admin", FIRM, "admin"),
    "accountant": token("a-acc", FIRM, "accountant"),
    "other_firm_admin": token("b-admin", OTHER, "admin"),
    "expired": token("a-admin", FIRM, "admin", expires_in=-60),
    "alg_none": forged({"sub": "a-admin", "partner_id": FIRM, "role": "admin", "exp": 4_000_000_000}),
    "wrong_secret": token("a-admin", FIRM, "admin", secret="not-the-secret-not-the-secret-not-it"),
    "tampered": tampered(token("a-admin", FIRM, "accountant")),
    "bad_role": jwt.encode({"sub": "x", "partner_id": FIRM, "role": "owner", "exp": 4_000_000_000}, SECRET,
                           algorithm="HS256"),
    "none": None,
}
IDS = sorted(set(A_CLIENTS.values()) | set(B_CLIENTS.values()) | {"a-acc", "a-admin", "b-admin", "nobody"})


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder: Path = tmp_path_factory.mktemp("hostile")
    settings_ = Settings(kafka=KafkaSettings("127.0.0.1:1"), store=StoreUrl.parse("db", f"sqlite:///{folder}/cd.db"),
                         http_host="127.0.0.1", http_port=1, jwt_secret=SECRET, portal_base_url="https://portal.test")
    service = bootstrap(settings_)
    seed(service)
    return service.api


def test_no_operation_answers_a_5xx_or_reveals_another_firm(api: Any) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", api)
    every = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    # /v1/stream answers an endless event stream, which a client reading whole responses never
    # finishes: its refusals are tested in tests/integration/test_client_directory_issue18.py.
    operations = [op for op in every if op.path not in ("/readyz", "/metrics", "/healthz", "/v1/stream")]
    statuses: Counter[str] = Counter()

    for operation in operations:
        @settings(max_examples=150, suppress_health_check=list(HealthCheck), deadline=None, database=None)
        @given(case=operation.as_strategy(), caller=st.sampled_from(sorted(CALLERS)), data=st.data())
        def run(case: Any, caller: str, data: st.DataObject) -> None:
            for name in ("client_id", "user_id"):
                if case.path_parameters and name in case.path_parameters and data.draw(st.booleans()):
                    case.path_parameters[name] = data.draw(st.sampled_from(IDS))
            case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
            if CALLERS[caller]:
                case.headers["Authorization"] = f"Bearer {CALLERS[caller]}"
            response = case.call()
            statuses[f"{case.method} {case.path} {response.status_code}"] += 1
            where = f"{case.method} {case.formatted_path} as {caller}: {response.status_code} {response.text[:300]}"
            assert response.status_code < 500, where
            if response.status_code >= 400:
                content_type = response.headers.get("content-type") or [""]
                content_type = content_type[0] if isinstance(content_type, list) else content_type
                assert content_type.startswith("application/problem+json"), where
                body = response.json()
                assert body.get("title") and (body.get("detail") or body.get("errors")), where
            if caller not in ("admin", "accountant", "other_firm_admin"):
                assert response.status_code in (401, 422), where
            client = (case.path_parameters or {}).get("client_id")
            if caller == "other_firm_admin" and client in set(A_CLIENTS.values()) - {"shared"}:
                assert response.status_code in (403, 404, 422), where
            if caller == "other_firm_admin" and response.status_code == 200 and "items" in response.text:
                # Pages list clients; a reminder history lists reminders (of a client already checked).
                listed = {i.get("client_id") for i in response.json()["items"]}
                assert not listed & (set(A_CLIENTS.values()) - {"shared"})

        run()
    server_errors = [k for k in statuses if k.rsplit(" ", 1)[1].startswith("5")]
    assert not server_errors
    print(f"\n{sum(statuses.values())} generated requests over {len(operations)} operations: 0 5xx; "
          f"by status: {dict(Counter(k.rsplit(' ', 1)[1] for k in statuses.elements()))}")
