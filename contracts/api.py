"""Models of the client_directory HTTP API (docs/CONTRACT.md, "HTTP API of client_directory")."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from contracts.events import Frequency, Money, Task


class TabId(StrEnum):
    INVITATIONS = "invitations"
    ONBOARDING = "onboarding"
    MINE = "mine"
    ALL = "all"


class ClientStatus(StrEnum):
    INVITED = "invited"
    ONBOARDING = "onboarding"
    VERIFICATION_FAILED = "verification_failed"
    CONNECTED = "connected"


class AccountantRef(BaseModel):
    user_id: str
    name: str


class ClientItem(BaseModel):
    client_id: str
    name: str
    status: ClientStatus
    missing_receipts: int
    ready_to_export: int
    wallet_balance: Money | None
    accountants: list[AccountantRef]


class TabCount(BaseModel):
    id: TabId
    count: int


class ClientPage(BaseModel):
    tab: TabId
    tabs: list[TabCount]
    total: int = Field(ge=0, description=(
        "v1.1: how many clients of this tab match the search (q) and the missing-receipts filter, "
        "counted on the same snapshot as the items; with neither, the tab's count"))
    items: list[ClientItem]
    next_cursor: str | None


class NotificationSetting(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email_enabled: bool
    frequency: Frequency


class NotificationDetails(NotificationSetting):
    next_digest_at: AwareDatetime | None = Field(default=None, description=(
        "v1.1: when the next digest covering this client goes out to the caller under this "
        "setting (the notifier's schedule, RFC 3339 in Europe/Copenhagen); null when email is off"))


class ClientDetails(ClientItem):
    notifications: NotificationDetails


class GoToClient(BaseModel):
    url: str


class ReminderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tasks: list[Task] = Field(min_length=1, max_length=3)
    comment: Annotated[str, StringConstraints(max_length=4000)] = ""


class ReminderAccepted(BaseModel):
    reminder_id: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, object]] | None = None
