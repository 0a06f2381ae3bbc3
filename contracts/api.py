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


class ClientSort(StrEnum):
    """The order of GET /v1/clients (and its CSV): by name, or by a figure then name then
    client_id. A leading `-` is the exact reverse of the order without it, as for `-name`."""

    NAME = "name"
    NAME_DESC = "-name"
    MISSING_RECEIPTS = "missing_receipts"
    MISSING_RECEIPTS_DESC = "-missing_receipts"
    READY_TO_EXPORT = "ready_to_export"
    READY_TO_EXPORT_DESC = "-ready_to_export"


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


# --- v1.1 additions: reminder history, bulk assignment, the live page ---------------------------

BulkId = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f/]+$")]
MAX_BULK_IDS = 500


class Person(BaseModel):
    user_id: str
    name: str | None = Field(description="the member's current name; null when the firm has no such member now")


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class ReminderDelivery(Person):
    status: DeliveryStatus
    at: AwareDatetime | None = Field(description="when it was sent or given up; null while pending")


class ReminderHistoryItem(BaseModel):
    reminder_id: str
    requested_by: Person
    requested_at: AwareDatetime
    tasks: list[Task]
    comment: str
    deliveries: list[ReminderDelivery] = Field(description=(
        "one per recipient: the accountants assigned when it was requested (pending until the "
        "notifier's outcome), and anyone else the notifier reported an outcome for"))


class ReminderHistory(BaseModel):
    items: list[ReminderHistoryItem] = Field(description="newest first")


class BulkAssignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assign: list[BulkId] = Field(default_factory=list, max_length=MAX_BULK_IDS)
    unassign: list[BulkId] = Field(default_factory=list, max_length=MAX_BULK_IDS)


class BulkAssignmentResult(BaseModel):
    assigned: list[str] = Field(description="assigned now or already (in the order asked)")
    unassigned: list[str] = Field(description="unassigned now or already not assigned")
    not_found: list[str] = Field(description="no current client of the firm by that id")


class TabsChanged(BaseModel):
    """The data of a `tabs` event of GET /v1/stream (its SSE `id` is `position`)."""

    position: int = Field(description="the read model's position this is true at; resume with Last-Event-ID")
    tabs: list[TabCount] = Field(description="the caller's tabs and counts, as GET /v1/clients lists them")
    clients: list[str] = Field(description="clients of the caller's tabs that changed (at most 50)")
    truncated: bool = Field(description="more changed than listed: reload the open tab")
