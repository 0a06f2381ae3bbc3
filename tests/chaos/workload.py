"""The chaos workload: platform events for many firms (with duplicates, cross-topic reorderings
and poison); the API commands are in api.py, the digest runs in runner.py. Everything sent and
every answer is logged (History), Jepsen style.

The shape keeps the final state a function of the acknowledged history whatever order the
services apply topics in, so the checker can be exact:
- per firm: admins a0, a1 (never change); accountants p2-p4 (pool A: assigned only through the
  API, never removed); accountants b5-b7 (pool B: assigned by the platform, role changes, at
  most one removal, never re-added: a removal and an assignment on another topic then end the
  same in any order);
- "k" clients: created by the platform, then changed only through the API (and by metrics and
  renames, which commute with it); each belongs to one API worker, so its commands are sequential;
- "p" clients: the platform's whole lifecycle, never touched by the API.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

PLATFORM_MEMBERS, PLATFORM_CLIENTS, PLATFORM_METRICS = (
    "platform.partner-members", "platform.partner-clients", "platform.client-metrics")
ADMINS, POOL_A, POOL_B = ("a0", "a1"), ("p2", "p3", "p4"), ("b5", "b6", "b7")


class History:
    """Every operation, in the order the client side saw it complete (`seq`), as JSON lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._file = open(path, "w")  # noqa: SIM115 - open for the run

    def add(self, **entry: Any) -> dict[str, Any]:
        with self._lock:
            entry["seq"] = len(self.entries)
            entry["t"] = round(time.time(), 3)
            self.entries.append(entry)
            self._file.write(json.dumps(entry) + "\n")
        return entry

    def close(self) -> None:
        with self._lock:
            self._file.close()


class Gate:
    """API commands hold it shared; a digest run holds it alone (the state it sees is then the
    acknowledged history up to that point)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._exclusive = True
            self._cond.wait_for(lambda: self._shared == 0)
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


def user_name(user: str) -> str:
    return {"a": "Admin", "p": "Pat", "b": "Bea"}[user[0]] + f" {user[1:]}"


def client_name(n: int, suffix: str = "") -> str:
    return f"Client {n:04d}{suffix}"


@dataclass
class PClient:
    """The platform generator's view of a client."""

    n: int
    status: str = "none"
    accountants: list[str] = field(default_factory=list)
    name: str = ""


@dataclass
class Firm:
    partner: str
    role: dict[str, str] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    clients: dict[str, PClient] = field(default_factory=dict)


def envelope(type_: str, partner: str, subject: str, data: dict[str, Any], event_id: str) -> bytes:
    return json.dumps({"specversion": "1.0", "id": event_id, "source": "/chaos", "type": type_,
                       "time": datetime.now(UTC).isoformat(), "subject": subject, "partnerid": partner,
                       "datacontenttype": "application/json", "data": data}).encode()


class Platform:
    """Produces the platform's events: a legal lifecycle per entity, interleaved at random."""

    def __init__(self, bootstrap: str, history: History, rng: random.Random, firms: int, k_clients: int,
                 run: str) -> None:
        self.history = history
        self.rng = rng
        self.run = run
        # One request in flight: per-key order on a partition is then the order sent.
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2,
                                      max_in_flight_requests_per_connection=1, retries=5)
        self.firms = [Firm(f"chaos-{run}-f{n}") for n in range(firms)]
        self.k_clients = k_clients
        self.sent: list[tuple[str, bytes, bytes, dict[str, Any]]] = []  # valid records, for duplicates
        self.counter = 0
        self.metrics_clock = datetime(2026, 11, 1, tzinfo=UTC)

    def _send(self, topic: str, key: str, value: bytes, **entry: Any) -> None:
        metadata = self.producer.send(topic, key=key.encode(), value=value).get(timeout=30)
        self.history.add(kind="event", topic=topic, partition=metadata.partition, offset=metadata.offset,
                         key=key, **entry)

    def event(self, topic: str, type_: str, firm: Firm, subject: str, data: dict[str, Any]) -> None:
        self.counter += 1
        event_id = f"{self.run}-e{self.counter}"
        value = envelope(type_, firm.partner, subject, data, event_id)
        entry = {"id": event_id, "type": type_, "partner": firm.partner, "subject": subject, "data": data}
        self.sent.append((topic, subject.encode(), value, entry))
        self._send(topic, subject, value, **entry)

    # --- setup: members and the API's clients ---------------------------------------------
    def setup(self) -> None:
        for firm in self.firms:
            for short in (*ADMINS, *POOL_A, *POOL_B):
                user = f"{firm.partner}-{short}"
                role = "admin" if short in ADMINS else "accountant"
                firm.role[user] = role
                self.event(PLATFORM_MEMBERS, "partner.member.added.v1", firm, user,
                           {"user_id": user, "email": f"{user}@firm.test", "name": user_name(short), "role": role,
                            "locale": self.rng.choice(["en", "fr"])})
            for n in range(self.k_clients):
                client = f"{firm.partner}-k{n}"
                name = client_name(n)
                if n % 3 == 2:
                    self.event(PLATFORM_CLIENTS, "client.partner_invited.v1", firm, client,
                               {"client_id": client, "client_name": name})
                else:
                    self.event(PLATFORM_CLIENTS, "client.onboarding_started.v1", firm, client,
                               {"client_id": client, "client_name": name, "invited_by": f"{firm.partner}-a0"})
                    self.event(PLATFORM_CLIENTS, "client.verification_completed.v1", firm, client,
                               {"client_id": client})
                firm.clients[client] = PClient(n, "api", name=name)
        self.producer.flush()

    # --- one random step ---------------------------------------------------------------------
    def step(self) -> None:
        rng = self.rng
        firm = rng.choice(self.firms)
        roll = rng.random()
        if roll < 0.03:
            self.poison(firm)
        elif roll < 0.10 and self.sent:
            self.duplicate()
        elif roll < 0.13:
            self.member_change(firm)
        elif roll < 0.33:
            self.metrics(firm)
        elif roll < 0.38:
            self.rename(firm)
        else:
            self.lifecycle(firm)

    def duplicate(self) -> None:
        # The same CloudEvent again, at a new offset: consumers must change nothing.
        # Half re-send a recent event (a producer's retry), half any event (a replay).
        recent = self.rng.random() < 0.5
        topic, key, value, entry = self.rng.choice(self.sent[-20:] if recent else self.sent)
        self.history.add(kind="event", topic=topic, dup=True,
                         **self._offsets(topic, key, value), id=entry["id"], type=entry["type"])

    def _offsets(self, topic: str, key: bytes, value: bytes) -> dict[str, int]:
        metadata = self.producer.send(topic, key=key, value=value).get(timeout=30)
        return {"partition": metadata.partition, "offset": metadata.offset}

    def poison(self, firm: Firm) -> None:
        self.counter += 1
        event_id = f"{self.run}-x{self.counter}"
        kind = self.rng.choice(["malformed", "unknown_type", "invalid_data"])
        topic = self.rng.choice([PLATFORM_MEMBERS, PLATFORM_CLIENTS, PLATFORM_METRICS])
        subject = f"{firm.partner}-poison{self.counter}"
        if kind == "malformed":
            value = b'{"specversion": "1.0", "id": "' + event_id.encode() + b'", "type": '
        elif kind == "unknown_type":
            value = envelope("client.exploded.v1", firm.partner, subject, {"client_id": subject}, event_id)
        else:
            value = envelope("client.metrics_updated.v1", firm.partner, subject,
                             {"client_id": subject, "missing_receipts": -3}, event_id)
            topic = PLATFORM_METRICS
        self.history.add(kind="event", topic=topic, poison=kind, id=event_id,
                         **self._offsets(topic, subject.encode(), value))

    def member_change(self, firm: Firm) -> None:
        live = [f"{firm.partner}-{u}" for u in POOL_B if f"{firm.partner}-{u}" not in firm.removed]
        if not live:
            return
        user = self.rng.choice(live)
        if not firm.removed and self.rng.random() < 0.25:
            firm.removed.add(user)
            for client in firm.clients.values():
                if user in client.accountants:
                    client.accountants.remove(user)
            self.event(PLATFORM_MEMBERS, "partner.member.removed.v1", firm, user, {"user_id": user})
        else:
            firm.role[user] = "admin" if firm.role[user] == "accountant" else "accountant"
            self.event(PLATFORM_MEMBERS, "partner.member.role_changed.v1", firm, user,
                       {"user_id": user, "role": firm.role[user]})

    def metrics(self, firm: Firm) -> None:
        if not firm.clients:
            return
        client = self.rng.choice(list(firm.clients))
        # Distinct as_of values, sent in a random order: an older one must be ignored.
        self.metrics_clock += timedelta(seconds=1)
        as_of = self.metrics_clock - timedelta(minutes=self.rng.randint(0, 30))
        self.event(PLATFORM_METRICS, "client.metrics_updated.v1", firm, client, {
            "client_id": client,
            "wallet_balance": {"amount": f"{self.rng.randint(-500, 90000)}.{self.rng.randint(0, 99):02d}",
                               "currency": "EUR"},
            "missing_receipts": self.rng.randint(0, 9), "ready_to_export": self.rng.randint(0, 9),
            "as_of": as_of.isoformat()})

    def rename(self, firm: Firm) -> None:
        live = [c for c, pc in firm.clients.items() if pc.status not in ("none", "disconnected")]
        if not live:
            return
        client = self.rng.choice(live)
        pc = firm.clients[client]
        pc.name = client_name(pc.n, f" {self.rng.choice(['SA', 'ApS', 'Ltd', 'GmbH', 'AB'])}{self.counter}")
        self.event(PLATFORM_CLIENTS, "client.renamed.v1", firm, client, {"client_id": client, "client_name": pc.name})

    def lifecycle(self, firm: Firm) -> None:
        platform = [c for c, pc in firm.clients.items() if pc.status != "api"]
        if len(platform) < 25 and (not platform or self.rng.random() < 0.3):
            n = 1000 + len(platform)
            client = f"{firm.partner}-p{n}"
            firm.clients[client] = PClient(n, name=client_name(n))
            platform.append(client)
            self.start(firm, client)
            return
        client = self.rng.choice(platform)
        pc = firm.clients[client]
        rng = self.rng
        if pc.status in ("none", "disconnected"):
            self.start(firm, client)
        elif pc.status in ("onboarding", "verification_failed") and rng.random() < 0.5:
            ok = rng.random() < 0.7
            pc.status = "connected" if ok else "verification_failed"
            if ok:
                self.event(PLATFORM_CLIENTS, "client.verification_completed.v1", firm, client, {"client_id": client})
            else:
                self.event(PLATFORM_CLIENTS, "client.verification_failed.v1", firm, client,
                           {"client_id": client, "reason": "documents unreadable"})
        elif rng.random() < 0.08:
            pc.status, pc.accountants = "disconnected", []
            self.event(PLATFORM_CLIENTS, "client.disconnected.v1", firm, client, {"client_id": client})
        else:
            live = [f"{firm.partner}-{u}" for u in POOL_B if f"{firm.partner}-{u}" not in firm.removed]
            user = rng.choice([f"{firm.partner}-{u}" for u in POOL_B])
            if user in pc.accountants:
                pc.accountants.remove(user)
                self.event(PLATFORM_CLIENTS, "client.accountant_unassigned.v1", firm, client,
                           {"client_id": client, "user_id": user})
            elif user in live:
                pc.accountants.append(user)
                self.event(PLATFORM_CLIENTS, "client.accountant_assigned.v1", firm, client,
                           {"client_id": client, "user_id": user})

    def start(self, firm: Firm, client: str) -> None:
        pc = firm.clients[client]
        pc.accountants = []
        if self.rng.random() < 0.3:
            pc.status = "invited"
            self.event(PLATFORM_CLIENTS, "client.partner_invited.v1", firm, client,
                       {"client_id": client, "client_name": pc.name})
        else:
            pc.status = "onboarding"
            self.event(PLATFORM_CLIENTS, "client.onboarding_started.v1", firm, client,
                       {"client_id": client, "client_name": pc.name, "invited_by": f"{firm.partner}-a1"})

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()
