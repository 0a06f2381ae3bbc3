"""The platform's events as the benchmarks send them: firms with members, clients that are
invited or onboarded, verified, assigned an accountant and get their figures updated."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.events import Topic

BASE_TIME = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
CLIENTS_PER_FIRM = 100
ACCOUNTANTS_PER_FIRM = 3


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes
    value: bytes


def cloud_event(type_: str, partner: str, subject: str, data: dict[str, Any], at: datetime | None = None,
                event_id: str | None = None) -> bytes:
    return json.dumps({
        "specversion": "1.0", "id": event_id or str(uuid.uuid4()), "source": "/bench", "type": type_,
        "time": (at or datetime.now(UTC)).isoformat(), "subject": subject, "partnerid": partner,
        "datacontenttype": "application/json", "data": data,
    }).encode()


def firm_id(n: int) -> str:
    return f"firm-{n:05d}"


def member(partner: str, user: str, role: str, name: str) -> Record:
    data = {"user_id": user, "email": f"{user}@{partner}.test", "name": name, "role": role, "locale": "fr"}
    return Record(Topic.PARTNER_MEMBERS.value, user.encode(),
                  cloud_event("partner.member.added.v1", partner, user, data))


def client_events(partner: str, n: int, accountant: str) -> list[Record]:
    """One client's life: started (invited or onboarding), verified, assigned, figures twice."""
    client = f"{partner}-client-{n:06d}"
    name = f"Société {n:06d} {'Élodie' if n % 3 == 0 else 'Edgar'} SARL"
    key = client.encode()
    clients, metrics = Topic.PARTNER_CLIENTS.value, Topic.CLIENT_METRICS.value
    out: list[Record] = []
    if n % 2:
        out.append(Record(clients, key, cloud_event("client.partner_invited.v1", partner, client,
                                                    {"client_id": client, "client_name": name})))
    else:
        out.append(Record(clients, key, cloud_event(
            "client.onboarding_started.v1", partner, client,
            {"client_id": client, "client_name": name, "invited_by": f"{partner}-admin"})))
        out.append(Record(clients, key, cloud_event("client.verification_completed.v1", partner, client,
                                                    {"client_id": client})))
    out.append(Record(clients, key, cloud_event("client.accountant_assigned.v1", partner, client,
                                                {"client_id": client, "user_id": accountant})))
    for k in range(2):
        as_of = BASE_TIME + timedelta(minutes=n * 2 + k)
        out.append(Record(metrics, key, cloud_event(
            "client.metrics_updated.v1", partner, client,
            {"client_id": client, "wallet_balance": {"amount": f"{n * 7 % 10000}.{k}0", "currency": "EUR"},
             "missing_receipts": (n + k) % 5, "ready_to_export": n % 4, "as_of": as_of.isoformat()})))
    return out


def platform_events(count: int, prefix: str = "") -> Iterator[Record]:
    """Exactly `count` records: each firm's members first, then its clients' events."""
    produced = 0
    firm = 0
    while True:
        partner = f"{prefix}{firm_id(firm)}"
        batch = [member(partner, f"{partner}-admin", "admin", "Ada Admin")]
        accountants = [f"{partner}-acc-{a}" for a in range(ACCOUNTANTS_PER_FIRM)]
        batch += [member(partner, user, "accountant", f"Chloé {user[-1]}") for user in accountants]
        for n in range(CLIENTS_PER_FIRM):
            batch += client_events(partner, n, accountants[n % ACCOUNTANTS_PER_FIRM])
        for record in batch:
            if produced == count:
                return
            yield record
            produced += 1
        firm += 1
