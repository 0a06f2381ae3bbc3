"""Facts of different topics (members, clients, metrics, notifications) may arrive in any
interleaving; each rule here gives one outcome for one arrival order, and README.md says why."""

from __future__ import annotations

from services.client_directory.domain.model import assignments_key, client_key
from tests.client_directory.support import (
    Directory,
    accountant,
    admin,
    assigned,
    connected,
    disconnected,
    firm,
    member_added,
    member_removed,
    metrics,
    onboarding,
    preference,
    role_changed,
    unassigned,
)


def test_figures_that_come_before_the_client_show_once_it_is_onboarded(directory: Directory) -> None:
    f = firm()
    early = metrics(f, "c1", 4, amount="12.30")
    directory.send(early)
    assert directory.outcome(early) == ("applied", "")
    assert directory.page(admin(f), "onboarding")["items"] == []
    assert directory.client(admin(f), "c1") is None

    directory.send(onboarding(f, "c1", "Acme"))
    item = directory.page(admin(f), "onboarding")["items"][0]
    assert (item["missing_receipts"], item["wallet_balance"]) == (4, {"amount": "12.30", "currency": "EUR"})


def test_figures_survive_a_disconnection_and_show_when_the_client_comes_back(directory: Directory) -> None:
    f = firm()
    directory.send(connected(f, "c1", "Acme"), metrics(f, "c1", 3), disconnected(f, "c1"),
                   metrics(f, "c1", 8, as_of="2026-03-01T00:00:00Z"))
    directory.send(onboarding(f, "c1", "Acme"))
    assert directory.page(admin(f), "onboarding")["items"][0]["missing_receipts"] == 8


def test_an_assignment_of_a_member_not_known_yet_is_kept_and_shows_once_they_are_added(
    directory: Directory,
) -> None:
    f = firm()
    directory.send(connected(f, "c1", "Acme"))
    early = assigned(f, "c1", "chloe")
    directory.send(early)
    assert directory.outcome(early) == ("applied", "")
    assert directory.page(admin(f), "all")["items"][0]["accountants"] == []
    assert directory.ids(accountant(f, "chloe"), "mine") == []
    assert directory.client(accountant(f, "chloe"), "c1") is None

    directory.send(member_added(f, "chloe", "Chloé Comptable"))
    assert directory.page(admin(f), "all")["items"][0]["accountants"] == [
        {"user_id": "chloe", "name": "Chloé Comptable"}]
    assert directory.ids(accountant(f, "chloe"), "mine") == ["c1"]
    assert directory.counts(accountant(f, "chloe")) == {"mine": 1}


def test_removing_a_member_unassigns_them_from_every_client_in_the_event_store(directory: Directory) -> None:
    f = firm()
    directory.send(member_added(f, "chloe", "Chloé"), member_added(f, "otto", "Otto"))
    directory.send(connected(f, "c1", "Acme"), connected(f, "c2", "Beta"), onboarding(f, "c3", "Gamma"),
                   assigned(f, "c1", "chloe"), assigned(f, "c2", "chloe"), assigned(f, "c3", "chloe"),
                   assigned(f, "c1", "otto"), unassigned(f, "c2", "chloe"))
    directory.send(member_removed(f, "chloe"))

    repository = directory.app.repository
    assert [repository.get(client_key(f, c)).accountants for c in ("c1", "c2", "c3")] == [["otto"], [], []]
    assert repository.get(assignments_key(f, "chloe")).clients == []
    assert repository.get(assignments_key(f, "otto")).clients == ["c1"]
    # The read model agrees: her rows are gone, not merely hidden.
    m = directory.read_model.mark
    assert directory.read_model.query(f"SELECT client_id FROM cd_assignments WHERE partner_id = {m} "
                                      f"AND user_id = {m}", (f, "chloe")) == []
    assert [i["accountants"] for i in directory.page(admin(f), "all")["items"]] == [
        [{"user_id": "otto", "name": "Otto"}], []]

    # An assignment that arrives after her removal is refused; coming back starts afresh.
    late = assigned(f, "c2", "chloe")
    directory.send(late)
    assert directory.outcome(late) == ("rejected", f"chloe is no longer a member of {f}")
    directory.send(member_added(f, "chloe", "Chloé"))
    assert directory.ids(accountant(f, "chloe"), "mine") == []
    assert directory.ids(accountant(f, "chloe"), "onboarding") == []


def test_removing_a_member_whose_assignment_came_before_them_unassigns_it_too(directory: Directory) -> None:
    f = firm()
    directory.send(connected(f, "c1", "Acme"), assigned(f, "c1", "chloe"))
    directory.send(member_added(f, "chloe", "Chloé"), member_removed(f, "chloe"))
    assert directory.app.repository.get(client_key(f, "c1")).accountants == []
    directory.send(member_added(f, "chloe", "Chloé"))
    assert directory.ids(accountant(f, "chloe"), "mine") == []


def test_the_unassignments_of_a_removal_are_in_the_same_transaction_as_the_removal(directory: Directory) -> None:
    f = firm()
    directory.send(member_added(f, "chloe", "Chloé"), connected(f, "c1", "Acme"), assigned(f, "c1", "chloe"))
    before = directory.app.recorder.max_notification_id() or 0
    directory.send(member_removed(f, "chloe"))
    written = [n for n in directory.app.recorder.select_notifications(start=before, limit=100,
                                                                      inclusive_of_start=False)]
    topics = [n.topic for n in written]
    assert sorted(topics) == sorted([
        "client_directory:Member.Removed",
        "client_directory:ClientRelationship.AccountantUnassigned",
        "client_directory:Assignments.Forgotten",
    ])


def test_a_role_change_keeps_the_members_assignments(directory: Directory) -> None:
    f = firm()
    directory.send(member_added(f, "chloe", "Chloé"), connected(f, "c1", "Acme"), assigned(f, "c1", "chloe"))
    directory.send(role_changed(f, "chloe", "admin"))
    assert directory.ids(admin(f, "chloe"), "mine") == ["c1"]


def test_a_preference_that_comes_before_the_client_shows_in_its_details(directory: Directory) -> None:
    f = firm()
    directory.send(preference(f, "c1", "ada", True, "daily"))
    directory.send(connected(f, "c1", "Acme"))
    details = directory.client(admin(f, "ada"), "c1")
    assert details is not None
    assert details["notifications"] == {"email_enabled": True, "frequency": "daily"}
    assert directory.client(admin(f, "bob"), "c1")["notifications"] == {  # type: ignore[index]
        "email_enabled": False, "frequency": "weekly"}
