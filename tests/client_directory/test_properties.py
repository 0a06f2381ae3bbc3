"""Property: whatever history the platform publishes for several firms, delivered in any order
the contract allows (a client's events keep their order; other subjects and topics interleave),
with redeliveries, and mixed with the portal's commands, every tab of every caller shows
exactly what a plain in-memory model of the contract says, and nothing of another firm.

The model below is written from docs/CONTRACT.md and the rules in services/client_directory/README.md,
not from the implementation; it shares only the name folding and sort key, whose meaning the
unit tests pin (`Élodie` between `Edgar` and `Fabrice`, `societe` finds `Société Générale`).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.api import TabId
from services.client_directory.application.directory import CommandRejected, NotAMember
from services.client_directory.domain.model import client_key
from services.client_directory.projections.clients import (
    Caller,
    TabForbidden,
)
from services.client_directory.projections.text import fold, sort_key
from tests.client_directory import support as s
from tests.client_directory.support import Directory, topic_of

FIRMS, USERS, CLIENTS = 2, 3, 5
CLIENT_NAMES = ["Société Générale", "societe generale", "Élodie", "Edgar", "Fabrice", "Client 2", "Client 10",
                "Œuvre", "zeta", "Zeta"]
MEMBER_NAMES = ["Chloé", "chloe", "Otto", "Ève", "Adam"]
AS_OF = ["2026-01-01T10:00:00+00:00", "2026-01-02T10:00:00+00:00", "2026-01-03T11:00:00+01:00",
         "2026-01-04T10:00:00+00:00"]
SEARCHES = ["societe", "E", "client 1", "é", "zz"]
ENDED = ("declined", "disconnected")

# --- histories ----------------------------------------------------------------------------------

user_ = st.integers(0, USERS - 1)
role_ = st.sampled_from(["admin", "accountant"])
client_name = st.sampled_from(CLIENT_NAMES)


def any_client_op(f: int, c: int) -> st.SearchStrategy[tuple[Any, ...]]:
    """Any fact or command about one client, legal or not in its current state."""
    return st.one_of(
        st.tuples(st.just("invited"), st.just(f), st.just(c), client_name),
        st.tuples(st.just("onboarding"), st.just(f), st.just(c), client_name),
        st.tuples(st.sampled_from(["verified", "failed", "disconnected", "accept", "decline"]), st.just(f), st.just(c)),
        st.tuples(st.just("renamed"), st.just(f), st.just(c), client_name),
        st.tuples(st.sampled_from(["assigned", "unassigned", "api_assign", "api_unassign"]), st.just(f), st.just(c),
                  user_),
        st.tuples(st.just("metrics"), st.just(f), st.just(c), st.integers(0, 3), st.integers(0, len(AS_OF) - 1)),
        st.tuples(st.just("preference"), st.just(f), st.just(c), user_, st.booleans(),
                  st.sampled_from(["daily", "weekly", "monthly"])),
    )


# What usually comes next in each state (a history is mostly legal, with some noise).
LIKELY = {
    "absent": ["invited", "onboarding"],
    "invited": ["accept", "decline", "assigned", "renamed", "metrics", "disconnected"],
    "onboarding": ["verified", "failed", "assigned", "api_assign", "unassigned", "renamed", "metrics", "preference"],
    "connected": ["assigned", "api_assign", "unassigned", "api_unassign", "renamed", "metrics", "preference",
                  "disconnected"],
}
NEXT = {"invited": "invited", "onboarding": "onboarding", "accept": "connected", "decline": "absent",
        "verified": "connected", "disconnected": "absent"}


@st.composite
def client_life(draw: st.DrawFn, f: int, c: int) -> list[tuple[Any, ...]]:
    ops: list[tuple[Any, ...]] = []
    state = "absent"
    for _ in range(draw(st.integers(0, 9))):
        if draw(st.integers(0, 9)) == 0:
            op = draw(any_client_op(f, c))
        else:
            kind = draw(st.sampled_from(LIKELY[state]))
            if kind in ("invited", "onboarding", "renamed"):
                op = (kind, f, c, draw(client_name))
            elif kind == "metrics":
                op = (kind, f, c, draw(st.integers(0, 3)), draw(st.integers(0, len(AS_OF) - 1)))
            elif kind == "preference":
                op = (kind, f, c, draw(user_), draw(st.booleans()), "daily")
            elif "assign" in kind:
                op = (kind, f, c, draw(user_))
            else:
                op = (kind, f, c)
        ops.append(op)
        state = NEXT.get(op[0], state)
    return ops


@st.composite
def member_life(draw: st.DrawFn, f: int, u: int) -> list[tuple[Any, ...]]:
    ops: list[tuple[Any, ...]] = []
    present = False
    for _ in range(draw(st.integers(0, 3))):
        noise = draw(st.integers(0, 9)) == 0
        if present != noise:
            op = draw(st.sampled_from([("role_changed", f, u, "admin"), ("role_changed", f, u, "accountant"),
                                       ("member_removed", f, u)]))
        else:
            op = ("member_added", f, u, draw(role_), draw(st.sampled_from(MEMBER_NAMES)))
        ops.append(op)
        present = op[0] != "member_removed" if not noise else present
    return ops


@st.composite
def history(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Every member's and every client's own history, one after the other: the platform's
    order within each stream. How streams interleave is drawn separately (`delivery`)."""
    ops: list[tuple[Any, ...]] = []
    for f in range(FIRMS):
        for u in range(USERS):
            ops += draw(member_life(f, u))
        for c in range(CLIENTS):
            ops += draw(client_life(f, c))
    return ops


COMMANDS = ("accept", "decline", "api_assign", "api_unassign")


@dataclass
class Step:
    op: tuple[Any, ...]
    event: dict[str, Any] | None  # None for a portal command
    stream: tuple[str, ...]  # the order the contract keeps: one (topic, firm, subject)
    expected: str = ""  # the model's verdict on the event's first delivery


def steps_of(ops: list[tuple[Any, ...]], firms: list[str]) -> list[Step]:
    steps = []
    for op in ops:
        f = firms[op[1]]
        u = lambda i: f"u{i}"  # noqa: E731 - ids shared by both firms on purpose
        c = lambda i: f"c{i}"  # noqa: E731
        event: dict[str, Any] | None
        match op:
            case ("member_added", _, user, role, name):
                event = s.member_added(f, u(user), name, role=role)
            case ("role_changed", _, user, role):
                event = s.role_changed(f, u(user), role)
            case ("member_removed", _, user):
                event = s.member_removed(f, u(user))
            case ("invited", _, client, name):
                event = s.invited(f, c(client), name)
            case ("onboarding", _, client, name):
                event = s.onboarding(f, c(client), name)
            case ("verified", _, client):
                event = s.verified(f, c(client))
            case ("failed", _, client):
                event = s.failed(f, c(client))
            case ("disconnected", _, client):
                event = s.disconnected(f, c(client))
            case ("renamed", _, client, name):
                event = s.renamed(f, c(client), name)
            case ("assigned", _, client, user):
                event = s.assigned(f, c(client), u(user))
            case ("unassigned", _, client, user):
                event = s.unassigned(f, c(client), u(user))
            case ("metrics", _, client, missing, at):
                event = s.metrics(f, c(client), missing, as_of=AS_OF[at], amount=f"{missing}.50", ready=at)
            case ("preference", _, client, user, enabled, frequency):
                event = s.preference(f, c(client), u(user), enabled, frequency)
            case _:
                event = None
        # A command keeps its place among its client's events.
        stream = ("platform.partner-clients", f, c(op[2])) if event is None else (topic_of(event), f, event["subject"])
        steps.append(Step(op, event, stream))
    return steps


def delivery(steps: list[Step], rnd: random.Random, duplicates: int) -> list[Step]:
    """An interleaving of the streams that keeps each stream's order, with redeliveries."""
    streams: dict[tuple[str, ...], list[Step]] = {}
    for step in steps:
        streams.setdefault(step.stream, []).append(step)
    order: list[Step] = []
    while streams:
        key = rnd.choice(sorted(streams))
        order.append(streams[key].pop(0))
        if not streams[key]:
            del streams[key]
    for _ in range(duplicates):
        events = [i for i, step in enumerate(order) if step.event is not None]
        if not events:
            break
        original = rnd.choice(events)
        order.insert(rnd.randint(original + 1, len(order)), order[original])
    return order


# --- the model ----------------------------------------------------------------------------------

@dataclass
class MClient:
    name: str
    status: str
    accountants: list[str] = field(default_factory=list)


@dataclass
class MMember:
    name: str
    role: str
    active: bool = True


class Model:
    def __init__(self) -> None:
        self.members: dict[tuple[str, str], MMember] = {}
        self.clients: dict[tuple[str, str], MClient] = {}
        self.figures: dict[tuple[str, str], tuple[str, int, str, int]] = {}
        self.preferences: dict[tuple[str, str, str], dict[str, Any]] = {}

    def active(self, f: str, user: str) -> bool:
        member = self.members.get((f, user))
        return member is not None and member.active

    def apply(self, event: dict[str, Any]) -> str:
        """'applied' or 'rejected', and the state changes of an applied event."""
        f, d, kind = event["partnerid"], event["data"], event["type"]
        member = self.members.get((f, d.get("user_id", "")))
        client = self.clients.get((f, d.get("client_id", "")))
        live = client is not None and client.status not in ENDED
        if kind == "partner.member.added.v1":
            if member is not None and member.active:
                return "rejected"
            self.members[f, d["user_id"]] = MMember(d["name"], d["role"])
        elif kind == "partner.member.role_changed.v1":
            if member is None or not member.active or member.role == d["role"]:
                return "rejected"
            member.role = d["role"]
        elif kind == "partner.member.removed.v1":
            if member is None or not member.active:
                return "rejected"
            member.active = False
            for (cf, _), other in self.clients.items():
                if cf == f and d["user_id"] in other.accountants:
                    other.accountants.remove(d["user_id"])
        elif kind in ("client.partner_invited.v1", "client.onboarding_started.v1"):
            if live:
                return "rejected"
            status = "invited" if kind == "client.partner_invited.v1" else "onboarding"
            self.clients[f, d["client_id"]] = MClient(d["client_name"], status)
        elif kind == "client.metrics_updated.v1":
            earlier = self.figures.get((f, d["client_id"]))
            as_of = _instant(d["as_of"])
            if earlier is not None and as_of <= _instant(earlier[0]):
                return "rejected"
            self.figures[f, d["client_id"]] = (d["as_of"], d["missing_receipts"], d["wallet_balance"]["amount"],
                                               d["ready_to_export"])
        elif kind == "notification.preference_set.v1":
            self.preferences[f, d["client_id"], d["user_id"]] = {"email_enabled": d["email_enabled"],
                                                                 "frequency": d["frequency"]}
        elif client is None:
            return "rejected"  # every other type is about a client that must exist
        elif kind in ("client.verification_completed.v1", "client.verification_failed.v1"):
            if client.status not in ("onboarding", "verification_failed"):
                return "rejected"
            client.status = "connected" if kind == "client.verification_completed.v1" else "verification_failed"
        elif kind == "client.disconnected.v1":
            if not live:
                return "rejected"
            client.status, client.accountants = "disconnected", []
        elif kind == "client.renamed.v1":
            if client.name == d["client_name"]:
                return "rejected"
            client.name = d["client_name"]
        elif kind == "client.accountant_assigned.v1":
            removed = member is not None and not member.active
            if removed or not live or d["user_id"] in client.accountants:
                return "rejected"
            client.accountants.append(d["user_id"])
        elif kind == "client.accountant_unassigned.v1":
            if d["user_id"] not in client.accountants:
                return "rejected"
            client.accountants.remove(d["user_id"])
        return "applied"

    def command(self, op: tuple[Any, ...], f: str) -> str:
        kind, client_id = op[0], f"c{op[2]}"
        client = self.clients.get((f, client_id))
        if client is None or client.status in ENDED:
            return "not found"
        if kind in ("accept", "decline"):
            if client.status != "invited":
                return "conflict"
            if kind == "accept":
                client.status = "connected"
            else:
                client.status, client.accountants = "declined", []
            return "ok"
        user = f"u{op[3]}"
        if kind == "api_assign":
            if not self.active(f, user):
                return "not a member"
            if user not in client.accountants:
                client.accountants.append(user)
            return "ok"
        if user in client.accountants:
            client.accountants.remove(user)
            return "ok"
        return "ok" if self.active(f, user) else "not a member"

    # --- what the Clients page shows -----------------------------------------------------------

    def item(self, f: str, client_id: str) -> dict[str, Any]:
        client = self.clients[f, client_id]
        figures = self.figures.get((f, client_id))
        people = sorted((sort_key(self.members[f, u].name), u, self.members[f, u].name)
                        for u in client.accountants if self.active(f, u))
        return {
            "client_id": client_id, "name": client.name, "status": client.status,
            "missing_receipts": figures[1] if figures else 0, "ready_to_export": figures[3] if figures else 0,
            "wallet_balance": {"amount": figures[2], "currency": "EUR"} if figures else None,
            "accountants": [{"user_id": u, "name": name} for _, u, name in people],
        }

    def tab(self, caller: Caller, tab: TabId) -> list[str]:
        """Ids on the tab, in ascending order."""
        f, user = caller.partner_id, caller.user_id
        chosen = []
        for (cf, client_id), client in self.clients.items():
            if cf != f:
                continue
            mine = user in client.accountants and self.active(f, user)
            on = {
                TabId.INVITATIONS: client.status == "invited",
                TabId.ONBOARDING: client.status in ("onboarding", "verification_failed")
                and (caller.is_admin or mine),
                TabId.MINE: client.status == "connected" and mine,
                TabId.ALL: client.status == "connected",
            }[tab]
            if on:
                chosen.append(client_id)
        return sorted(chosen, key=lambda c: (sort_key(self.clients[f, c].name), c))

    def tabs(self, caller: Caller) -> list[dict[str, Any]]:
        visible = ([TabId.INVITATIONS, TabId.ONBOARDING, TabId.MINE, TabId.ALL] if caller.is_admin
                   else [TabId.ONBOARDING, TabId.MINE])
        counted = [{"id": t.value, "count": len(self.tab(caller, t))} for t in visible]
        return [t for t in counted if t["count"] or t["id"] in ("mine", "all")]

    def details(self, caller: Caller, client_id: str) -> dict[str, Any] | None:
        f = caller.partner_id
        client = self.clients.get((f, client_id))
        if client is None or client.status in ENDED:
            return None
        if not caller.is_admin and not (
            client.status != "invited" and caller.user_id in client.accountants and self.active(f, caller.user_id)
        ):
            return None
        notifications = self.preferences.get((f, client_id, caller.user_id),
                                             {"email_enabled": False, "frequency": "weekly"})
        return {**self.item(f, client_id), "notifications": notifications}


def _instant(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text)


# --- the property ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Directory]:
    made = Directory(str(Path(tmp_path_factory.mktemp("properties")) / "client_directory.db"))
    yield made
    made.app.close()


def run_command(directory: Directory, op: tuple[Any, ...], f: str) -> str:
    app, client_id = directory.app, f"c{op[2]}"
    commands = {
        "accept": lambda: app.accept_invitation(f, client_id, "the-admin"),
        "decline": lambda: app.decline_invitation(f, client_id, "the-admin"),
        "api_assign": lambda: app.assign(f, client_id, f"u{op[-1]}"),
        "api_unassign": lambda: app.unassign(f, client_id, f"u{op[-1]}"),
    }
    try:
        commands[op[0]]()
    except LookupError:
        return "not found"
    except CommandRejected:
        return "conflict"
    except NotAMember:
        return "not a member"
    return "ok"


def items_of_every_page(directory: Directory, caller: Caller, tab: TabId, limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = directory.page(caller, tab, limit=limit, cursor=cursor)
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


@pytest.mark.timeout(900)  # passing takes seconds; shrinking a failure can take minutes
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(ops=history(), seed=st.integers(0, 2**32 - 1),
       duplicates=st.integers(0, 4), cuts=st.lists(st.booleans(), max_size=120), page_size=st.integers(1, 3))
def test_every_tab_of_every_member_matches_the_model(
    directory: Directory, ops: list[tuple[Any, ...]], seed: int, duplicates: int, cuts: list[bool], page_size: int
) -> None:
    run = uuid.uuid4().hex[:8]
    firms = [f"firm{i}-{run}" for i in range(FIRMS)]
    order = delivery(steps_of(ops, firms), random.Random(seed), duplicates)

    model, seen = Model(), set()
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        if batch:
            directory.deliver(batch)
            batch.clear()

    for i, step in enumerate(order):
        f = firms[step.op[1]]
        if step.event is None:
            flush()
            assert run_command(directory, step.op, f) == model.command(step.op, f), step.op
            continue
        if batch and (topic_of(batch[-1]) != topic_of(step.event) or (i < len(cuts) and cuts[i])):
            flush()
        batch.append(step.event)
        if step.event["id"] in seen:
            continue  # a redelivery: the model ignores it, the inbox must too
        seen.add(step.event["id"])
        step.expected = model.apply(step.event)
    flush()

    # The inbox recorded every event as the model judged it.
    for step in order:
        if step.event is not None:
            assert directory.outcome(step.event)[0] == step.expected, step.op

    # The aggregates and the read model agree on who is assigned, pending members included.
    directory.projection.catch_up()
    for f in firms:
        for c in range(CLIENTS):
            key = client_key(f, f"c{c}")
            m = directory.read_model.mark
            rows = directory.read_model.query(
                f"SELECT user_id FROM cd_assignments WHERE partner_id = {m} AND client_id = {m} ORDER BY user_id",
                (f, f"c{c}"))
            expected = sorted(model.clients[f, f"c{c}"].accountants) if (f, f"c{c}") in model.clients else []
            aggregate: list[str] = []
            if key in directory.app.repository:
                aggregate = sorted(directory.app.repository.get(key).accountants)
            assert aggregate == expected == [r["user_id"] for r in rows], (f, c, aggregate, expected, rows)

    # A firm with nothing here sees nothing, whatever ids it asks for.
    stranger = Caller(f"stranger-{run}", "u0", "admin")
    assert all(directory.page(stranger, tab)["items"] == [] for tab in TabId)
    assert all(directory.client(stranger, f"c{c}") is None for c in range(CLIENTS))

    # Every caller's every tab, both orders, filtered and searched; details of every client.
    rnd = random.Random(seed)
    for f in firms:
        for caller in [Caller(f, f"u{u}", role) for u in range(USERS) for role in ("admin", "accountant")]:
            assert directory.page(caller, TabId.MINE)["tabs"] == model.tabs(caller), caller
            allowed = list(TabId) if caller.is_admin else [TabId.ONBOARDING, TabId.MINE]
            for tab in TabId:
                if tab not in allowed:
                    with pytest.raises(TabForbidden):
                        directory.page(caller, tab)
                    continue
                expected_ids = model.tab(caller, tab)
                items = items_of_every_page(directory, caller, tab, page_size)
                assert items == [model.item(f, c) for c in expected_ids], (caller, tab)
                assert directory.ids(caller, tab, descending=True) == expected_ids[::-1], (caller, tab)
                with_missing = [c for c in expected_ids if model.item(f, c)["missing_receipts"] > 0]
                assert directory.ids(caller, tab, missing_receipts=True) == with_missing, (caller, tab)
                q = rnd.choice(SEARCHES)
                found = [c for c in expected_ids if fold(q) in fold(model.clients[f, c].name)]
                assert directory.ids(caller, tab, q=q, descending=True) == found[::-1], (caller, tab, q)
                sql = directory.queries.sql
                kept = directory.read_model.query(*sql.count(caller, tab))[0]["n"]
                assert kept == directory.read_model.query(*sql.recount(caller, tab))[0]["n"]
            for c in range(CLIENTS):
                assert directory.client(caller, f"c{c}") == model.details(caller, f"c{c}"), (caller, c)
