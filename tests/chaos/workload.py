"""The chaos workload: platform events for many firms (with duplicates, cross-topic reorderings
and poison), API commands from admins and accountants against either instance, digest runs at
advancing instants. Everything sent and every answer is logged (History), Jepsen style.

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
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaProducer

from tests.chaos.cluster import auth

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


# ------------------------------------------------------------------------------ API commands

@dataclass
class KClient:
    """An API worker's view of one of its clients."""

    partner: str
    client: str
    status: str  # invited, connected, declined
    seen: bool = False
    accountants: set[str] = field(default_factory=set)


class ApiWorker:
    """Runs commands on its own clients, one at a time, against either client-directory
    instance. An idempotent command whose answer was lost is sent again until definite."""

    def __init__(self, name: str, urls: list[str], clients: list[KClient], history: History, gate: Gate,
                 rng: random.Random, stop: threading.Event, before_first_digest: threading.Event) -> None:
        self.name, self.urls, self.clients = name, urls, clients
        self.history, self.gate, self.rng, self.stop = history, gate, rng, stop
        self.before_first_digest = before_first_digest
        self.http = httpx.Client(timeout=5)

    def call(self, method: str, path: str, caller: str, partner: str, role: str, *, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[str, int, Any]:
        """('ok'|'fail'|'retry'|'info', status, json). info: it may or may not have happened."""
        url = self.rng.choice(self.urls)
        try:
            response = self.http.request(method, url + path, json=body,
                                         headers={**auth(caller, partner, role), **(headers or {})})
        except httpx.ConnectError:
            return "fail", 0, None  # refused: it never reached the service
        except httpx.HTTPError:
            return "info", 0, None  # timed out or cut: it may have happened
        payload = None
        if response.content:
            try:
                payload = response.json()
            except ValueError:
                payload = None
        if response.status_code >= 500:
            return "info", response.status_code, payload
        if response.status_code == 409 and "try again" in response.text:
            return "retry", 409, payload  # lost an optimistic-concurrency race: nothing happened
        return ("ok" if response.status_code < 300 else "fail"), response.status_code, payload

    def definite(self, method: str, path: str, caller: str, partner: str, role: str, **kwargs: Any
                 ) -> tuple[str, int, Any, bool]:
        """Send again until the answer is definite, for up to 120 s. The flag says an earlier
        attempt's answer was lost (it may have taken effect)."""
        attempts, deadline, maybe = 0, time.monotonic() + 120, False
        while True:
            attempts += 1
            outcome, status, payload = self.call(method, path, caller, partner, role, **kwargs)
            if outcome in ("ok", "fail"):
                return outcome, status, payload, maybe
            maybe = maybe or outcome == "info"
            if time.monotonic() > deadline:
                return "info", status, payload, maybe
            time.sleep(min(2.0, 0.2 * attempts))

    def run(self) -> None:
        while not self.stop.is_set():
            client = self.rng.choice(self.clients)
            with self.gate.shared():
                if not self.stop.is_set():
                    self.step(client)
            time.sleep(self.rng.uniform(0.05, 0.3))
        self.http.close()

    def log(self, op: str, kc: KClient, outcome: str, status: int, **extra: Any) -> None:
        self.history.add(kind="op", op=op, partner=kc.partner, client=kc.client, outcome=outcome, status=status,
                         worker=self.name, **extra)

    def step(self, kc: KClient) -> None:
        partner, admin = kc.partner, f"{kc.partner}-{self.rng.choice(ADMINS)}"
        path = f"/v1/clients/{kc.client}"
        if not kc.seen:
            outcome, status, payload = self.call("GET", path, admin, partner, "admin")
            if outcome == "ok" and payload and payload.get("status") in ("invited", "connected"):
                kc.seen = True
            return
        if kc.status == "declined":
            return
        if kc.status == "invited":
            accept = self.rng.random() < 0.75
            verb = "accept" if accept else "decline"
            outcome, status, _, maybe = self.definite("POST", f"/v1/invitations/{kc.client}/{verb}", admin,
                                                      partner, "admin")
            # A retried command answered 409 (accept) or 404 (decline, the client is gone)
            # means the lost first attempt took effect: the client was seen pending before.
            if outcome == "fail" and maybe and status == (409 if accept else 404):
                outcome = "ok"
            self.log(verb, kc, outcome, status, by=admin)
            if outcome == "ok":
                kc.status = "connected" if accept else "declined"
            return
        roll = self.rng.random()
        if roll < 0.35:
            user = f"{partner}-{self.rng.choice(POOL_A)}"
            assign = user not in kc.accountants
            outcome, status, _, _ = self.definite("PUT" if assign else "DELETE", f"{path}/accountants/{user}",
                                                  admin, partner, "admin")
            self.log("assign" if assign else "unassign", kc, outcome, status, user=user, by=admin)
            if outcome == "ok":
                (kc.accountants.add if assign else kc.accountants.discard)(user)
        elif roll < 0.7:
            who = [f"{partner}-{a}" for a in ADMINS] + sorted(kc.accountants)
            user = self.rng.choice(who)
            role = "admin" if user.rsplit("-", 1)[1] in ADMINS else "accountant"
            # Weekly and monthly only before the first digest run (see model.digests).
            frequency = (self.rng.choice(["daily", "weekly", "monthly"]) if not self.before_first_digest.is_set()
                         else "daily")
            body = {"email_enabled": self.rng.random() < 0.7, "frequency": frequency}
            outcome, status, _, _ = self.definite("PUT", f"{path}/notifications", user, partner, role, body=body)
            self.log("preference", kc, outcome, status, user=user, **body)
        else:
            tasks = self.rng.sample(["missing_receipts", "ready_to_export", "wallet_balance"], self.rng.randint(1, 3))
            body = {"tasks": tasks, "comment": self.rng.choice(["", "Merci", "Please look"])}
            if self.rng.random() < 0.5:
                key = uuid.uuid4().hex
                outcome, status, payload, _ = self.definite("POST", f"{path}/reminders", admin, partner, "admin",
                                                            body=body, headers={"Idempotency-Key": key})
            else:
                key = ""
                outcome, status, payload = self.call("POST", f"{path}/reminders", admin, partner, "admin", body=body)
            reminder = payload.get("reminder_id") if outcome == "ok" and isinstance(payload, dict) else None
            self.log("reminder", kc, outcome, status, by=admin, key=key, reminder_id=reminder)
