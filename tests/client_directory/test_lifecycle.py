"""The life of a client relationship, fed as the platform publishes it: each fact moves the
client between tabs, and a fact that is illegal in the current state is recorded as rejected
with its reason and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.client_directory.support import (
    Directory,
    admin,
    assigned,
    disconnected,
    failed,
    firm,
    invited,
    member_added,
    member_removed,
    metrics,
    onboarding,
    renamed,
    role_changed,
    unassigned,
    verified,
)


def test_a_client_the_firm_invites_goes_from_onboarding_to_connected(directory: Directory) -> None:
    f = firm()
    directory.send(onboarding(f, "c1", "Acme"))
    assert directory.ids(admin(f), "onboarding") == ["c1"]
    assert directory.page(admin(f), "onboarding")["items"][0]["status"] == "onboarding"

    directory.send(failed(f, "c1"))
    item = directory.page(admin(f), "onboarding")["items"][0]
    assert item["status"] == "verification_failed"  # still on Onboarding, with its status

    directory.send(verified(f, "c1"))
    assert directory.ids(admin(f), "onboarding") == []
    assert directory.ids(admin(f), "all") == ["c1"]
    assert directory.counts(admin(f)) == {"mine": 0, "all": 1}


def test_a_client_that_invited_the_firm_waits_in_invitations(directory: Directory) -> None:
    f = firm()
    directory.send(invited(f, "c1", "Acme"))
    page = directory.page(admin(f), "invitations")
    assert [i["client_id"] for i in page["items"]] == ["c1"]
    assert page["items"][0]["status"] == "invited"
    assert directory.counts(admin(f)) == {"invitations": 1, "mine": 0, "all": 0}


def test_a_disconnected_client_is_gone_from_every_tab_and_can_come_back(directory: Directory) -> None:
    f = firm()
    directory.send(member_added(f, "acc", "Chloé"), *[onboarding(f, "c1", "Acme"), verified(f, "c1")],
                   assigned(f, "c1", "acc"))
    directory.send(disconnected(f, "c1"))
    assert directory.ids(admin(f), "all") == []
    assert directory.client(admin(f), "c1") is None
    # Its accountants went with it, in the event store too.
    assert directory.app.repository.get(_client_key(f, "c1")).accountants == []

    directory.send(invited(f, "c1", "Acme again"))
    page = directory.page(admin(f), "invitations")
    assert [(i["client_id"], i["name"], i["accountants"]) for i in page["items"]] == [("c1", "Acme again", [])]


def test_renaming_changes_the_name_on_every_tab(directory: Directory) -> None:
    f = firm()
    directory.send(onboarding(f, "c1", "Acme"), verified(f, "c1"), renamed(f, "c1", "Acme Holding"))
    assert [i["name"] for i in directory.page(admin(f), "all")["items"]] == ["Acme Holding"]


@pytest.mark.parametrize(
    ("history", "illegal", "reason"),
    [
        ([], lambda f: verified(f, "c1"), "client c1 of {f} was never invited or onboarded"),
        ([], lambda f: failed(f, "c1"), "client c1 of {f} was never invited or onboarded"),
        ([], lambda f: disconnected(f, "c1"), "client c1 of {f} was never invited or onboarded"),
        ([], lambda f: renamed(f, "c1", "X"), "client c1 of {f} was never invited or onboarded"),
        ([], lambda f: assigned(f, "c1", "acc"), "client c1 of {f} was never invited or onboarded"),
        ([], lambda f: role_changed(f, "u", "admin"), "u was never a member of {f}"),
        ([], lambda f: member_removed(f, "u"), "u was never a member of {f}"),
        (["invited"], lambda f: verified(f, "c1"), "client c1 is not in verification (it is invited)"),
        (["invited"], lambda f: invited(f, "c1", "Acme"), "client c1 is already invited"),
        (["onboarding"], lambda f: invited(f, "c1", "Acme"), "client c1 is already onboarding"),
        (["connected"], lambda f: verified(f, "c1"), "client c1 is not in verification (it is connected)"),
        (["connected"], lambda f: failed(f, "c1"), "client c1 is not in verification (it is connected)"),
        (["connected"], lambda f: onboarding(f, "c1", "Acme"), "client c1 is already connected"),
        (["disconnected"], lambda f: disconnected(f, "c1"), "client c1 is already disconnected"),
        (["disconnected"], lambda f: assigned(f, "c1", "acc"), "client c1 is disconnected: no assignments"),
        (["connected"], lambda f: renamed(f, "c1", "Acme"), "client c1 is already named 'Acme'"),
        (["connected"], lambda f: unassigned(f, "c1", "acc"), "acc is not assigned to client c1"),
        (["connected", "assigned"], lambda f: assigned(f, "c1", "acc"), "acc is already assigned to client c1"),
        (["member"], lambda f: member_added(f, "acc", "Chloé"), "acc is already a member of {f}"),
        (["member"], lambda f: role_changed(f, "acc", "accountant"), "acc is already accountant"),
        (["member", "removed"], lambda f: member_removed(f, "acc"), "acc is no longer a member"),
        (["member", "removed"], lambda f: role_changed(f, "acc", "admin"), "acc is no longer a member"),
        (["connected", "member", "removed"], lambda f: assigned(f, "c1", "acc"), "acc is no longer a member of {f}"),
    ],
)
def test_an_illegal_fact_is_rejected_with_its_reason_and_changes_nothing(
    directory: Directory, history: list[str], illegal, reason: str
) -> None:
    f = firm()
    setup = {
        "invited": [invited(f, "c1", "Acme")],
        "onboarding": [onboarding(f, "c1", "Acme")],
        "connected": [onboarding(f, "c1", "Acme"), verified(f, "c1")],
        "disconnected": [onboarding(f, "c1", "Acme"), verified(f, "c1"), disconnected(f, "c1")],
        "assigned": [assigned(f, "c1", "acc")],
        "member": [member_added(f, "acc", "Chloé")],
        "removed": [member_removed(f, "acc")],
    }
    for step in history:
        directory.send(*setup[step])
    before = _snapshot(directory, f)
    fact = illegal(f)
    directory.send(fact)
    assert directory.outcome(fact) == ("rejected", reason.format(f=f))
    assert _snapshot(directory, f) == before


def test_older_figures_are_ignored_and_newer_ones_win(directory: Directory) -> None:
    f = firm()
    directory.send(*[onboarding(f, "c1", "Acme"), verified(f, "c1")])
    newer = metrics(f, "c1", 5, as_of="2026-02-01T10:00:00+01:00")
    older = metrics(f, "c1", 9, as_of="2026-01-01T10:00:00+01:00")
    same = metrics(f, "c1", 7, as_of="2026-02-01T09:00:00+00:00")  # the same instant
    directory.send(newer, older, same)
    assert directory.outcome(newer) == ("applied", "")
    assert directory.outcome(older)[0] == "rejected"
    assert "not newer" in directory.outcome(same)[1]
    assert directory.page(admin(f), "all")["items"][0]["missing_receipts"] == 5


def test_the_same_event_id_twice_changes_nothing_the_second_time(directory: Directory) -> None:
    f = firm()
    first = onboarding(f, "c1", "Acme")
    directory.send(first)
    directory.send(dict(first))  # redelivered as a new record, at a new offset
    directory.send(first, verified(f, "c1"), first)  # and twice in one batch
    assert directory.outcome(first) == ("applied", "")
    assert directory.ids(admin(f), "all") == ["c1"]
    assert directory.app.repository.get(_client_key(f, "c1")).version == 2  # started, verified


def test_a_nul_character_in_an_id_is_rejected_rather_than_stalling_the_read_model(directory: Directory) -> None:
    f = firm()
    fact = onboarding(f, "c\x00", "Acme")
    directory.send(fact)
    assert directory.outcome(fact) == ("rejected", "an id or name contains a NUL character")


def _client_key(partner: str, client: str):  # type: ignore[no-untyped-def]
    from services.client_directory.domain.model import client_key

    return client_key(partner, client)


def _snapshot(directory: Directory, partner: str) -> dict[str, object]:
    """Everything the admin and the accountant see, and the aggregates' accountants."""
    view: dict[str, object] = {}
    for tab in ("invitations", "onboarding", "mine", "all"):
        view[tab] = directory.page(admin(partner), tab)
    key = _client_key(partner, "c1")
    if key in directory.app.repository:
        aggregate: Any = directory.app.repository.get(key)
        view["aggregate"] = (aggregate.status, aggregate.name, list(aggregate.accountants))
    notifications = directory.app.recorder.select_notifications(start=1, limit=100_000)
    view["domain events"] = [n.topic for n in notifications]
    return view
