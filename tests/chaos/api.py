"""The API side of the chaos workload: commands from admins and accountants against either
client-directory instance, each client's commands one at a time, every answer logged."""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.chaos.cluster import auth
from tests.chaos.workload import ADMINS, POOL_A, Gate, History


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
