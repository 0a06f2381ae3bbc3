"""Who sees which tab of the Clients page, and which rows make each tab."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.api import TabId

TAB_ROWS = {TabId.INVITATIONS: "invitations", TabId.ONBOARDING: "onboarding",
            TabId.MINE: "connected", TabId.ALL: "connected"}
ADMIN_TABS = (TabId.INVITATIONS, TabId.ONBOARDING, TabId.MINE, TabId.ALL)
ACCOUNTANT_TABS = (TabId.ONBOARDING, TabId.MINE)
HIDDEN_WHEN_EMPTY = (TabId.INVITATIONS, TabId.ONBOARDING)


class TabForbidden(Exception):
    """A tab the caller's role never sees (HTTP 403)."""


@dataclass(frozen=True)
class Caller:
    partner_id: str
    user_id: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def tabs_for(caller: Caller) -> tuple[TabId, ...]:
    return ADMIN_TABS if caller.is_admin else ACCOUNTANT_TABS


def assigned_only(caller: Caller, tab: TabId) -> bool:
    """Whether the tab shows only the caller's own clients (read from cd_assignments)."""
    return tab is TabId.MINE or (tab is TabId.ONBOARDING and not caller.is_admin)
