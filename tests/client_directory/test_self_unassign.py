"""An accountant may unassign a client from themselves ("Unassign the client from you");
anyone else's assignment stays the admins' to change."""

from __future__ import annotations

from tests.client_directory.support import assigned, member_added
from tests.client_directory.test_commands import published
from tests.client_directory.test_security import Portal, bearer, portal

__all__ = ["portal"]  # the fixture, shared with the security tests


def mine(p: Portal, user: str) -> list[str]:
    page = p.http.get("/v1/clients?tab=mine", headers=bearer(user, p.firm, "accountant")).json()
    return [item["client_id"] for item in page["items"]]


def test_an_accountant_unassigns_a_client_from_themselves_and_it_leaves_their_tab(portal: Portal) -> None:
    f = portal.firm
    assert mine(portal, "chloe") == ["c1"]
    response = portal.http.request("DELETE", "/v1/clients/c1/accountants/chloe",
                                   headers=bearer("chloe", f, "accountant"))
    assert response.status_code == 200, response.text
    assert response.json()["client_id"] == "c1" and response.json()["accountants"] == []
    assert mine(portal, "chloe") == []  # read-your-writes
    assert [(topic, type_) for topic, type_, _ in published(portal.facts, f)] == [
        ("portal.client-directory", "client.accountant_unassigned.v1")]


def test_an_accountant_may_not_unassign_another_accountant(portal: Portal) -> None:
    f = portal.firm
    portal.send(member_added(f, "dan", "Dan"), assigned(f, "c1", "dan"))
    response = portal.http.request("DELETE", "/v1/clients/c1/accountants/dan",
                                   headers=bearer("chloe", f, "accountant"))
    assert response.status_code == 403 and "only themselves" in response.json()["detail"]
    assert sorted(a["user_id"] for a in portal.http.get(
        "/v1/clients/c1", headers=bearer("ada", f, "admin")).json()["accountants"]) == ["chloe", "dan"]
    assert published(portal.facts, f) == []


def test_an_accountant_cannot_reach_a_client_they_are_not_assigned_to(portal: Portal) -> None:
    f = portal.firm
    portal.send(member_added(f, "dan", "Dan"))
    response = portal.http.request("DELETE", "/v1/clients/c1/accountants/dan",
                                   headers=bearer("dan", f, "accountant"))
    assert response.status_code == 404  # not on any of their tabs: as if it did not exist


def test_assigning_stays_an_admins_command(portal: Portal) -> None:
    f = portal.firm
    response = portal.http.put("/v1/clients/c1/accountants/chloe", headers=bearer("chloe", f, "accountant"))
    assert response.status_code == 403
