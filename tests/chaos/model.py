"""The model: a fold of the acknowledged history, written from docs/CONTRACT.md and the two
services' READMEs (not from their code). It says what every member's tabs must show, which
reminder emails and which digests are owed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

ENDED = ("declined", "disconnected")
ACTIVE = ("invited", "onboarding", "verification_failed", "connected")
COPENHAGEN = ZoneInfo("Europe/Copenhagen")


def first_due(after: datetime) -> datetime:
    """The first Monday 10:00 Copenhagen strictly after `after`: the first digest of every
    preference set before it (the notifier README's schedule), whatever the frequency."""
    local = after.astimezone(COPENHAGEN)
    day = local.date()
    while True:
        candidate = datetime(day.year, day.month, day.day, 10, 0, tzinfo=COPENHAGEN)
        if candidate.weekday() == 0 and candidate > local:
            return candidate.astimezone(UTC)
        day += timedelta(days=1)


def due_time(first: datetime, k: int) -> datetime:
    """The k-th digest due time of a run: weekdays at 10:00 Copenhagen from `first`."""
    day = first.astimezone(COPENHAGEN).date()
    left = k
    while left:
        day += timedelta(days=1)
        if day.weekday() < 5:
            left -= 1
    return datetime(day.year, day.month, day.day, 10, 0, tzinfo=COPENHAGEN).astimezone(UTC)


@dataclass
class Member:
    name: str
    role: str
    email: str
    active: bool = True


@dataclass
class Client:
    name: str
    status: str
    accountants: list[str] = field(default_factory=list)


@dataclass
class Reminder:
    """A reminder answered 202: it must reach exactly the accountants of one of the states the
    client went through from the 202 on (the notifier picks them when it dispatches)."""

    partner: str
    client: str
    reminder_id: str
    candidates: list[tuple[str, ...]] = field(default_factory=list)


@dataclass
class Owed:
    """An email owed: its Message-ID parts and why."""

    kind: str  # reminder or digest
    partner: str
    user: str
    key: str  # reminder id, or the due time (RFC 3339, UTC)
    clients: tuple[str, ...] = ()


class Model:
    def __init__(self) -> None:
        self.members: dict[tuple[str, str], Member] = {}
        self.clients: dict[tuple[str, str], Client] = {}
        self.figures: dict[tuple[str, str], tuple[datetime, dict[str, Any]]] = {}
        self.preferences: dict[tuple[str, str, str], tuple[bool, str]] = {}
        self.owed: list[Owed] = []  # digests
        self.reminders: list[Reminder] = []
        self._open: dict[tuple[str, str], list[Reminder]] = {}
        self.unsure_reminders: dict[tuple[str, str], int] = {}  # (partner, client) -> answers lost
        self.unsure: list[str] = []  # commands whose outcome stayed unknown after 120 s of retries
        self.unsure_clients: set[tuple[str, str]] = set()  # their clients: the tab check skips them
        self.rejected = 0
        self.first: datetime | None = None

    def active(self, partner: str, user: str) -> bool:
        member = self.members.get((partner, user))
        return member is not None and member.active

    # --- folding --------------------------------------------------------------------------------
    def fold(self, history: list[dict[str, Any]]) -> Model:
        for entry in sorted(history, key=lambda e: e["seq"]):
            if entry["kind"] == "event" and not entry.get("dup") and not entry.get("poison"):
                if self.event(entry["type"], entry["partner"], entry["data"]) == "rejected":
                    self.rejected += 1
            elif entry["kind"] == "op":
                self.command(entry)
            elif entry["kind"] == "meta":
                self.first = datetime.fromisoformat(entry["first_due"])
            elif entry["kind"] == "digest":
                self.digest(datetime.fromisoformat(entry["due"]))
        return self

    def event(self, kind: str, f: str, d: dict[str, Any]) -> str:
        """The README's table of outcomes, for the shapes the workload sends."""
        user, client_id = d.get("user_id", ""), d.get("client_id", "")
        member = self.members.get((f, user))
        client = self.clients.get((f, client_id))
        live = client is not None and client.status not in ENDED
        if kind == "partner.member.added.v1":
            if member is not None and member.active:
                return "rejected"
            self.members[f, user] = Member(d["name"], d["role"], d["email"])
        elif kind == "partner.member.role_changed.v1":
            if member is None or not member.active or member.role == d["role"]:
                return "rejected"
            member.role = d["role"]
        elif kind == "partner.member.removed.v1":
            if member is None or not member.active:
                return "rejected"
            member.active = False
            for (cf, _), other in self.clients.items():
                if cf == f and user in other.accountants:
                    other.accountants.remove(user)
        elif kind in ("client.partner_invited.v1", "client.onboarding_started.v1"):
            if live:
                return "rejected"
            status = "invited" if kind == "client.partner_invited.v1" else "onboarding"
            self.clients[f, client_id] = Client(d["client_name"], status)
        elif kind == "client.metrics_updated.v1":
            as_of = datetime.fromisoformat(d["as_of"])
            kept = self.figures.get((f, client_id))
            if kept is not None and as_of <= kept[0]:
                return "rejected"
            self.figures[f, client_id] = (as_of, d)
        elif client is None:
            return "rejected"
        elif kind in ("client.verification_completed.v1", "client.verification_failed.v1"):
            if client.status not in ("onboarding", "verification_failed"):
                return "rejected"
            client.status = "connected" if kind.endswith("completed.v1") else "verification_failed"
        elif kind == "client.disconnected.v1":
            if not live:
                return "rejected"
            client.status, client.accountants = "disconnected", []
        elif kind == "client.renamed.v1":
            if client.name == d["client_name"]:
                return "rejected"
            client.name = d["client_name"]
        elif kind == "client.accountant_assigned.v1":
            if (member is not None and not member.active) or not live or user in client.accountants:
                return "rejected"
            client.accountants.append(user)
        elif kind == "client.accountant_unassigned.v1":
            if user not in client.accountants:
                return "rejected"
            client.accountants.remove(user)
        return "applied"

    def command(self, op: dict[str, Any]) -> None:
        f, client_id = op["partner"], op["client"]
        if op["outcome"] == "info":
            if op["op"] == "reminder":
                key = (f, client_id)
                self.unsure_reminders[key] = self.unsure_reminders.get(key, 0) + 1
            else:
                self.unsure.append(f"{op['op']} {client_id} (seq {op['seq']})")
                self.unsure_clients.add((f, client_id))
            return
        if op["outcome"] != "ok":
            return  # refused: nothing happened
        client = self.clients[f, client_id]
        kind = op["op"]
        if kind == "accept":
            client.status = "connected"
        elif kind == "decline":
            client.status, client.accountants = "declined", []
        elif kind == "assign" and op["user"] not in client.accountants:
            client.accountants.append(op["user"])
        elif kind == "unassign" and op["user"] in client.accountants:
            client.accountants.remove(op["user"])
        elif kind == "preference":
            self.preferences[f, client_id, op["user"]] = (op["email_enabled"], op["frequency"])
        elif kind == "reminder":
            reminder = Reminder(f, client_id, op["reminder_id"])
            self.reminders.append(reminder)
            self._open.setdefault((f, client_id), []).append(reminder)
        # Every active member assigned when it is dispatched (the notifier README), some time
        # after the 202: each state from then on is a candidate.
        recipients = tuple(sorted(u for u in client.accountants if self.active(f, u)
                                  and client.status not in ENDED))
        for waiting in self._open.get((f, client_id), []):
            if not waiting.candidates or waiting.candidates[-1] != recipients:
                waiting.candidates.append(recipients)

    def may_see_in_digest(self, f: str, user: str, client_id: str) -> bool:
        member, client = self.members.get((f, user)), self.clients.get((f, client_id))
        if member is None or not member.active or client is None or client.status not in ACTIVE:
            return False
        if member.role == "admin":
            return True
        return user in client.accountants and client.status != "invited"

    def digest(self, due: datetime) -> None:
        """One digest per recipient with an enabled preference due now for a client they may
        see. The workload sets weekly and monthly only before the first run, and runs every
        weekday in turn, so "due now" needs no memory of earlier runs."""
        local = due.astimezone(COPENHAGEN)
        monday = local.weekday() == 0
        due_kinds = {"daily"} | ({"weekly"} if monday else set()) | (
            {"monthly"} if due == self.first or (monday and local.day <= 7) else set())
        recipients: dict[tuple[str, str], list[str]] = {}
        for (f, client_id, user), (enabled, frequency) in sorted(self.preferences.items()):
            if enabled and frequency in due_kinds and self.may_see_in_digest(f, user, client_id):
                recipients.setdefault((f, user), []).append(client_id)
        for (f, user), clients in recipients.items():
            self.owed.append(Owed("digest", f, user, due.isoformat(), tuple(clients)))

    # --- what the Clients page shows ------------------------------------------------------------
    def item(self, f: str, client_id: str) -> dict[str, Any]:
        client = self.clients[f, client_id]
        kept = self.figures.get((f, client_id))
        figures = kept[1] if kept else None
        return {
            "client_id": client_id, "name": client.name, "status": client.status,
            "missing_receipts": figures["missing_receipts"] if figures else 0,
            "ready_to_export": figures["ready_to_export"] if figures else 0,
            "wallet_balance": figures["wallet_balance"] if figures else None,
            "accountants": sorted((u, self.members[f, u].name) for u in client.accountants if self.active(f, u)),
        }

    def tab(self, f: str, user: str, tab: str) -> list[str]:
        """The ids on a member's tab, in the page's order (names here sort as plain text)."""
        admin = self.members[f, user].role == "admin"
        chosen = []
        for (cf, client_id), client in self.clients.items():
            if cf != f:
                continue
            mine = user in client.accountants
            if {"invitations": client.status == "invited",
                "onboarding": client.status in ("onboarding", "verification_failed") and (admin or mine),
                "mine": client.status == "connected" and mine,
                "all": client.status == "connected"}[tab]:
                chosen.append(client_id)
        return sorted(chosen, key=lambda c: (self.clients[f, c].name.casefold(), self.clients[f, c].name, c))

    def tabs_of(self, f: str, user: str) -> list[str]:
        return (["invitations", "onboarding", "mine", "all"] if self.members[f, user].role == "admin"
                else ["onboarding", "mine"])
