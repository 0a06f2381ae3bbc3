"""Which clients each role sees on which tab, and the counts of the tabs it may see."""

from __future__ import annotations

import pytest

from services.client_directory.projections.clients import TabForbidden
from tests.client_directory.support import (
    Directory,
    accountant,
    admin,
    assigned,
    connected,
    disconnected,
    event,
    failed,
    firm,
    invited,
    member_added,
    metrics,
    onboarding,
)

# One firm with a client in every state; `chloe` is assigned to some, `otto` to none.
STATES = {
    "invited": lambda f: [invited(f, "invited", "Invited")],
    "invited-assigned": lambda f: [invited(f, "invited-assigned", "Invited assigned"),
                                   assigned(f, "invited-assigned", "chloe")],
    "onboarding": lambda f: [onboarding(f, "onboarding", "Onboarding")],
    "onboarding-mine": lambda f: [onboarding(f, "onboarding-mine", "Onboarding mine"),
                                  assigned(f, "onboarding-mine", "chloe")],
    "failed-mine": lambda f: [onboarding(f, "failed-mine", "Failed mine"), failed(f, "failed-mine"),
                              assigned(f, "failed-mine", "chloe")],
    "connected": lambda f: connected(f, "connected", "Connected"),
    "connected-mine": lambda f: [*connected(f, "connected-mine", "Connected mine"),
                                 assigned(f, "connected-mine", "chloe")],
    "connected-ada": lambda f: [*connected(f, "connected-ada", "Connected ada"),
                                assigned(f, "connected-ada", "ada")],
    "disconnected": lambda f: [*connected(f, "disconnected", "Disconnected"),
                               assigned(f, "disconnected", "chloe"), disconnected(f, "disconnected")],
    "declined": lambda f: [invited(f, "declined", "Declined")],  # declined below, by command
}


@pytest.fixture
def a_firm(directory: Directory) -> str:
    f = firm()
    directory.send(member_added(f, "ada", "Ada", role="admin"), member_added(f, "chloe", "Chloé"),
                   member_added(f, "otto", "Otto"))
    for make in STATES.values():
        directory.send(*make(f))
    directory.app.decline_invitation(f, "declined", "ada")
    return f


@pytest.mark.parametrize(
    ("who", "tab", "expected"),
    [
        ("ada", "invitations", ["invited", "invited-assigned"]),
        ("ada", "onboarding", ["failed-mine", "onboarding", "onboarding-mine"]),
        ("ada", "mine", ["connected-ada"]),
        ("ada", "all", ["connected", "connected-ada", "connected-mine"]),
        ("chloe", "onboarding", ["failed-mine", "onboarding-mine"]),
        ("chloe", "mine", ["connected-mine"]),
        ("otto", "onboarding", []),
        ("otto", "mine", []),
    ],
)
def test_each_role_sees_on_each_tab_exactly_its_clients(
    directory: Directory, a_firm: str, who: str, tab: str, expected: list[str]
) -> None:
    caller = admin(a_firm, who) if who == "ada" else accountant(a_firm, who)
    assert directory.ids(caller, tab) == expected


@pytest.mark.parametrize("tab", ["invitations", "all"])
def test_an_accountant_may_not_open_an_admin_tab(directory: Directory, a_firm: str, tab: str) -> None:
    with pytest.raises(TabForbidden, match=f"the {tab} tab is not for the accountant role"):
        directory.page(accountant(a_firm, "chloe"), tab)


def test_the_tabs_list_only_the_visible_tabs_with_their_counts(directory: Directory, a_firm: str) -> None:
    assert directory.counts(admin(a_firm, "ada")) == {"invitations": 2, "onboarding": 3, "mine": 1, "all": 3}
    assert directory.counts(accountant(a_firm, "chloe")) == {"onboarding": 2, "mine": 1}
    # Otto has no client in verification: his Onboarding tab is hidden, Mine stays.
    assert directory.counts(accountant(a_firm, "otto")) == {"mine": 0}


def test_empty_invitations_and_onboarding_are_hidden_but_answer_when_asked(directory: Directory) -> None:
    f = firm()
    directory.send(connected(f, "c1", "Acme"))
    page = directory.page(admin(f), "invitations")
    assert page["tabs"] == [{"id": "mine", "count": 0}, {"id": "all", "count": 1}]
    assert page["items"] == [] and page["next_cursor"] is None
    assert directory.page(admin(f), "onboarding")["items"] == []


def test_counts_are_of_whole_tabs_whatever_the_search_and_filter(directory: Directory, a_firm: str) -> None:
    page = directory.page(admin(a_firm, "ada"), "all", q="zzz", missing_receipts=True)
    assert page["items"] == []
    assert {t["id"]: t["count"] for t in page["tabs"]}["all"] == 3


def test_an_accountant_sees_details_only_of_clients_on_their_tabs(directory: Directory, a_firm: str) -> None:
    chloe = accountant(a_firm, "chloe")
    visible = {c for c in (*STATES, "declined") if directory.client(chloe, c) is not None}
    assert visible == {"onboarding-mine", "failed-mine", "connected-mine"}
    ada = admin(a_firm, "ada")
    visible = {c for c in (*STATES, "declined") if directory.client(ada, c) is not None}
    assert visible == set(STATES) - {"disconnected", "declined"}


def test_nothing_of_another_firm_is_ever_seen(directory: Directory, a_firm: str) -> None:
    other = firm()
    # The other firm has the same client ids and user ids: only the firm tells them apart.
    directory.send(member_added(other, "chloe", "Chloé Other"), *connected(other, "connected-mine", "Theirs"),
                   assigned(other, "connected-mine", "chloe"), metrics(other, "connected", 99))
    for tab in ("invitations", "onboarding", "mine", "all"):
        for item in directory.page(admin(a_firm, "ada"), tab)["items"]:
            assert item["name"] != "Theirs" and item["missing_receipts"] != 99
    assert directory.ids(admin(other), "all") == ["connected-mine"]
    assert directory.ids(accountant(other, "chloe"), "mine") == ["connected-mine"]
    assert directory.client(admin(other), "connected") is None
    assert directory.client(admin(other), "invited") is None
    mine = directory.page(accountant(a_firm, "chloe"), "mine")["items"]
    assert [(i["name"], i["accountants"]) for i in mine] == [
        ("Connected mine", [{"user_id": "chloe", "name": "Chloé"}])]


def test_an_item_carries_status_figures_and_accountants(directory: Directory) -> None:
    f = firm()
    directory.send(member_added(f, "zoe", "Zoé"), member_added(f, "adam", "Adam"),
                   member_added(f, "eve", "Ève"))
    directory.send(*connected(f, "c1", "Acme"), assigned(f, "c1", "zoe"), assigned(f, "c1", "eve"),
                   assigned(f, "c1", "adam"), metrics(f, "c1", 2, amount="-5.5", ready=3))
    assert directory.page(admin(f), "all")["items"] == [{
        "client_id": "c1", "name": "Acme", "status": "connected", "missing_receipts": 2,
        "ready_to_export": 3, "wallet_balance": {"amount": "-5.5", "currency": "EUR"},
        "accountants": [{"user_id": "adam", "name": "Adam"}, {"user_id": "eve", "name": "Ève"},
                        {"user_id": "zoe", "name": "Zoé"}],
    }]
    directory.send(onboarding(f, "c2", "Without figures"))
    assert directory.page(admin(f), "onboarding")["items"][0]["wallet_balance"] is None


def test_an_unknown_event_type_for_the_directory_is_rejected(directory: Directory) -> None:
    f = firm()
    # What the directory itself publishes on portal.client-directory, a topic it does not consume.
    accepted = event("client.invitation_accepted.v1", f, client_id="c1", by="ada")
    directory.deliver([accepted])
    assert directory.outcome(accepted) == (
        "rejected", "client.invitation_accepted.v1 is not handled by the client directory")
