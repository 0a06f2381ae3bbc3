"""The v1 event types of docs/CONTRACT.md (and the documented extensions), as pydantic models.

Each data model ignores unknown fields (consumers must tolerate producers adding fields) and
validates what it relies on. `EVENT_TYPES` is the registry consumers and exports read.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

Id = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class Topic(StrEnum):
    PARTNER_MEMBERS = "platform.partner-members"
    PARTNER_CLIENTS = "platform.partner-clients"
    CLIENT_METRICS = "platform.client-metrics"
    NOTIFICATIONS = "portal.notifications"
    # Extensions of the contract (see contracts/README.md): what the services publish.
    CLIENT_DIRECTORY = "portal.client-directory"
    NOTIFICATION_DELIVERIES = "portal.notification-deliveries"


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


class Role(StrEnum):
    ADMIN = "admin"
    ACCOUNTANT = "accountant"


class Frequency(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class Task(StrEnum):
    MISSING_RECEIPTS = "missing_receipts"
    READY_TO_EXPORT = "ready_to_export"
    WALLET_BALANCE = "wallet_balance"


class EventData(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# --- platform.partner-members -------------------------------------------------------------

class MemberAdded(EventData):
    user_id: Id
    email: Annotated[str, StringConstraints(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
    name: Name
    role: Role
    locale: Annotated[str, StringConstraints(min_length=2, max_length=35)] = "en"


class MemberRoleChanged(EventData):
    user_id: Id
    role: Role


class MemberRemoved(EventData):
    user_id: Id


# --- platform.partner-clients ----------------------------------------------------------------

class ClientPartnerInvited(EventData):
    client_id: Id
    client_name: Name


class ClientOnboardingStarted(EventData):
    client_id: Id
    client_name: Name
    invited_by: Id


class ClientVerificationCompleted(EventData):
    client_id: Id


class ClientVerificationFailed(EventData):
    client_id: Id
    reason: Annotated[str, StringConstraints(max_length=2000)] = ""


class ClientDisconnected(EventData):
    client_id: Id


class ClientRenamed(EventData):
    client_id: Id
    client_name: Name


class AccountantAssigned(EventData):
    client_id: Id
    user_id: Id


class AccountantUnassigned(EventData):
    client_id: Id
    user_id: Id


class InvitationAccepted(EventData):
    client_id: Id
    by: Id = Field(description="user_id of the admin who accepted")


class InvitationDeclined(EventData):
    client_id: Id
    by: Id = Field(description="user_id of the admin who declined")


# --- platform.client-metrics -----------------------------------------------------------------

class Money(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    amount: Annotated[str, StringConstraints(pattern=r"^-?\d{1,18}(\.\d{1,8})?$")] = Field(
        description="Decimal string"
    )
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = Field(description="ISO 4217")

    @property
    def decimal(self) -> Decimal:
        return Decimal(self.amount)


class ClientMetricsUpdated(EventData):
    client_id: Id
    wallet_balance: Money
    missing_receipts: int = Field(ge=0)
    ready_to_export: int = Field(ge=0)
    as_of: AwareDatetime


# --- portal.notifications -------------------------------------------------------------------

class PreferenceSet(EventData):
    client_id: Id
    user_id: Id
    email_enabled: bool
    frequency: Frequency


class ReminderRequested(EventData):
    reminder_id: Id
    client_id: Id
    requested_by: Id
    tasks: list[Task] = Field(min_length=1, max_length=3)
    comment: Annotated[str, StringConstraints(max_length=4000)] = ""


# --- portal.notification-deliveries (extension) ---------------------------------------------

class EmailSent(EventData):
    message_id: str
    kind: Annotated[str, StringConstraints(pattern=r"^(reminder|digest)$")]
    user_id: Id
    client_ids: list[Id]
    sent_at: AwareDatetime
    # Older events lack it: a consumer then matches the Message-ID (see the description).
    reminder_id: Id | None = Field(default=None, description=(
        "v1.1, optional: the reminder an email of kind `reminder` was for. Without it, a "
        "reminder's Message-ID is `<reminder-{hex}@{domain}>`, hex being the UUIDv5 of the JSON "
        "array [\"reminder\", reminder_id, user_id] in the notifier's fixed namespace"))


class EmailFailed(EventData):
    message_id: str
    kind: Annotated[str, StringConstraints(pattern=r"^(reminder|digest)$")]
    user_id: Id
    client_ids: list[Id]
    code: int | None = None
    reason: str
    # Older events lack it: a consumer then matches the Message-ID (see the description).
    reminder_id: Id | None = Field(default=None, description=(
        "v1.1, optional: the reminder an email of kind `reminder` was for. Without it, a "
        "reminder's Message-ID is `<reminder-{hex}@{domain}>`, hex being the UUIDv5 of the JSON "
        "array [\"reminder\", reminder_id, user_id] in the notifier's fixed namespace"))


@dataclass(frozen=True)
class EventType:
    """One entry of the contract: a CloudEvent type, its topic, data model and subject field."""

    name: str
    topic: Topic
    data: type[EventData]
    subject_field: str
    description: str


EVENT_TYPES: dict[str, EventType] = {
    e.name: e
    for e in [
        EventType("partner.member.added.v1", Topic.PARTNER_MEMBERS, MemberAdded, "user_id",
                  "A member joined the firm"),
        EventType("partner.member.role_changed.v1", Topic.PARTNER_MEMBERS, MemberRoleChanged,
                  "user_id", "A member's role changed"),
        EventType("partner.member.removed.v1", Topic.PARTNER_MEMBERS, MemberRemoved, "user_id",
                  "A member left the firm"),
        EventType("client.partner_invited.v1", Topic.PARTNER_CLIENTS, ClientPartnerInvited,
                  "client_id", "A client added the firm as external bookkeeper (Invitations)"),
        EventType("client.onboarding_started.v1", Topic.PARTNER_CLIENTS, ClientOnboardingStarted,
                  "client_id", "The firm invited a client to the platform (Onboarding)"),
        EventType("client.verification_completed.v1", Topic.PARTNER_CLIENTS,
                  ClientVerificationCompleted, "client_id", "KYC passed: the client is connected"),
        EventType("client.verification_failed.v1", Topic.PARTNER_CLIENTS, ClientVerificationFailed,
                  "client_id", "KYC failed"),
        EventType("client.disconnected.v1", Topic.PARTNER_CLIENTS, ClientDisconnected, "client_id",
                  "The client left the firm: gone from every tab"),
        EventType("client.renamed.v1", Topic.PARTNER_CLIENTS, ClientRenamed, "client_id",
                  "The client's name changed"),
        EventType("client.accountant_assigned.v1", Topic.PARTNER_CLIENTS, AccountantAssigned,
                  "client_id", "An accountant was assigned to the client"),
        EventType("client.accountant_unassigned.v1", Topic.PARTNER_CLIENTS, AccountantUnassigned,
                  "client_id", "An accountant was unassigned from the client"),
        EventType("client.metrics_updated.v1", Topic.CLIENT_METRICS, ClientMetricsUpdated,
                  "client_id", "The client's figures; a newer as_of wins"),
        EventType("notification.preference_set.v1", Topic.NOTIFICATIONS, PreferenceSet, "client_id",
                  "A member's email preference for a client"),
        EventType("notification.reminder_requested.v1", Topic.NOTIFICATIONS, ReminderRequested,
                  "client_id", "An admin asked to remind the client's accountants"),
        EventType("client.invitation_accepted.v1", Topic.CLIENT_DIRECTORY, InvitationAccepted,
                  "client_id", "The firm accepted a client's invitation (published by the API)"),
        EventType("client.invitation_declined.v1", Topic.CLIENT_DIRECTORY, InvitationDeclined,
                  "client_id", "The firm declined a client's invitation (published by the API)"),
        EventType("notification.email_sent.v1", Topic.NOTIFICATION_DELIVERIES, EmailSent, "user_id",
                  "The notifier delivered an email"),
        EventType("notification.email_failed.v1", Topic.NOTIFICATION_DELIVERIES, EmailFailed,
                  "user_id", "The notifier gave up on an email"),
    ]
}

# Assignments made through the API are published on portal.client-directory with the same
# types and data as the platform's; the registry maps a type to one model, so the topic is
# only a default for producers and a topic check is not part of validation.
API_PUBLISHED_ON = {
    "client.accountant_assigned.v1": Topic.CLIENT_DIRECTORY,
    "client.accountant_unassigned.v1": Topic.CLIENT_DIRECTORY,
}
