"""A client directory on a temporary store, fed through the inbox exactly as the Kafka
consumer feeds it (records parsed and validated, batches applied with their positions), and
read through the same queries the API serves. No broker, no HTTP."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from contracts.api import TabId
from contracts.events import EVENT_TYPES
from events.config import StoreUrl
from events.envelope import InboundEvent, InboundRecord, parse_record
from events.inbox import InboxSink
from events.store import ReadModel
from services.client_directory.application.directory import ClientDirectory
from services.client_directory.domain.model import Rejected as DirectoryRejected
from services.client_directory.projections.clients import Caller, ClientQueries, ClientsProjection


def event(type_: str, partner: str, *, event_id: str | None = None, **data: Any) -> dict[str, Any]:
    """A CloudEvent (as a dict) of one of the contract's types; the subject is taken from data."""
    spec = EVENT_TYPES[type_]
    return {
        "specversion": "1.0", "id": event_id or str(uuid.uuid4()), "source": "/tests", "type": type_,
        "time": datetime.now(UTC).isoformat(), "subject": data[spec.subject_field], "partnerid": partner,
        "datacontenttype": "application/json", "data": data,
    }


def topic_of(cloud_event: dict[str, Any]) -> str:
    return EVENT_TYPES[cloud_event["type"]].topic.value


# Shorthands for the facts the platform publishes.
def member_added(partner: str, user: str, name: str, role: str = "accountant", **kw: Any) -> dict[str, Any]:
    return event("partner.member.added.v1", partner, user_id=user, email=f"{user}@firm.test", name=name,
                 role=role, locale="fr", **kw)


def member_removed(partner: str, user: str) -> dict[str, Any]:
    return event("partner.member.removed.v1", partner, user_id=user)


def role_changed(partner: str, user: str, role: str) -> dict[str, Any]:
    return event("partner.member.role_changed.v1", partner, user_id=user, role=role)


def invited(partner: str, client: str, name: str) -> dict[str, Any]:
    return event("client.partner_invited.v1", partner, client_id=client, client_name=name)


def onboarding(partner: str, client: str, name: str, by: str = "someone") -> dict[str, Any]:
    return event("client.onboarding_started.v1", partner, client_id=client, client_name=name, invited_by=by)


def verified(partner: str, client: str) -> dict[str, Any]:
    return event("client.verification_completed.v1", partner, client_id=client)


def failed(partner: str, client: str, reason: str = "documents unreadable") -> dict[str, Any]:
    return event("client.verification_failed.v1", partner, client_id=client, reason=reason)


def disconnected(partner: str, client: str) -> dict[str, Any]:
    return event("client.disconnected.v1", partner, client_id=client)


def renamed(partner: str, client: str, name: str) -> dict[str, Any]:
    return event("client.renamed.v1", partner, client_id=client, client_name=name)


def assigned(partner: str, client: str, user: str) -> dict[str, Any]:
    return event("client.accountant_assigned.v1", partner, client_id=client, user_id=user)


def unassigned(partner: str, client: str, user: str) -> dict[str, Any]:
    return event("client.accountant_unassigned.v1", partner, client_id=client, user_id=user)


def metrics(partner: str, client: str, missing: int, *, as_of: str = "2026-01-05T10:00:00+00:00",
            amount: str = "100.00", ready: int = 0) -> dict[str, Any]:
    return event("client.metrics_updated.v1", partner, client_id=client,
                 wallet_balance={"amount": amount, "currency": "EUR"}, missing_receipts=missing,
                 ready_to_export=ready, as_of=as_of)


def preference(partner: str, client: str, user: str, enabled: bool, frequency: str) -> dict[str, Any]:
    return event("notification.preference_set.v1", partner, client_id=client, user_id=user,
                 email_enabled=enabled, frequency=frequency)


def connected(partner: str, client: str, name: str) -> list[dict[str, Any]]:
    return [onboarding(partner, client, name), verified(partner, client)]


class Directory:
    """The application, its read model and queries on one store."""

    def __init__(self, path: str) -> None:
        """`path`: a SQLite file, or a store URL (`postgresql://...`)."""
        url = path if "://" in path else f"sqlite:///{path}"
        self.app = ClientDirectory(StoreUrl.parse("CLIENT_DIRECTORY_DB", url))
        self.read_model = ReadModel(self.app)
        self.projection = ClientsProjection(self.app, self.read_model)
        self.queries = ClientQueries(self.read_model)
        self.sink = InboxSink("client_directory", self.app, self.app.handle, rejected=DirectoryRejected)
        self.offsets: dict[str, int] = defaultdict(lambda: -1)

    def send(self, *events: dict[str, Any] | Iterable[dict[str, Any]]) -> None:
        """Deliver events in this order: consecutive events of one topic go as one batch."""
        flat: list[dict[str, Any]] = []
        for item in events:
            flat.extend([item] if isinstance(item, dict) else item)
        batch: list[dict[str, Any]] = []
        for cloud_event in flat:
            if batch and topic_of(batch[-1]) != topic_of(cloud_event):
                self.deliver(batch)
                batch = []
            batch.append(cloud_event)
        if batch:
            self.deliver(batch)

    def deliver(self, batch: Sequence[dict[str, Any]]) -> None:
        """One batch of one topic's partition 0, as the consumer hands it to the inbox."""
        topic = topic_of(batch[0])
        inbound: list[InboundEvent] = []
        for cloud_event in batch:
            self.offsets[topic] += 1
            record = InboundRecord(topic=topic, partition=0, offset=self.offsets[topic],
                                   key=str(cloud_event["subject"]).encode(),
                                   value=json.dumps(cloud_event).encode())
            inbound.append(parse_record(record))
        self.sink.apply(topic, 0, inbound, self.offsets[topic])

    def outcome(self, cloud_event: dict[str, Any]) -> tuple[str, str]:
        """What the inbox recorded for this event: ("applied", "") or ("rejected", reason)."""
        received = self.app.inbox.inbox_entry(cloud_event["id"])
        assert received is not None, f"{cloud_event['id']} was never received"
        return received.outcome, received.reason

    def page(self, caller: Caller, tab: TabId | str = TabId.MINE, **options: Any) -> dict[str, Any]:
        self.projection.catch_up()
        return self.queries.page(caller, TabId(tab), **options)

    def ids(self, caller: Caller, tab: TabId | str = TabId.MINE, **options: Any) -> list[str]:
        return [item["client_id"] for item in self.page(caller, tab, **options)["items"]]

    def every_id(self, caller: Caller, tab: TabId | str, *, limit: int = 2, **options: Any) -> list[str]:
        """Every page of a tab, following next_cursor."""
        ids: list[str] = []
        cursor = None
        while True:
            page = self.page(caller, tab, limit=limit, cursor=cursor, **options)
            ids += [item["client_id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return ids

    def counts(self, caller: Caller) -> dict[str, int]:
        """The `tabs` of the caller's page: only visible tabs, with their counts."""
        return {t["id"]: t["count"] for t in self.page(caller, TabId.MINE)["tabs"]}

    def client(self, caller: Caller, client_id: str) -> dict[str, Any] | None:
        self.projection.catch_up()
        return self.queries.client(caller, client_id)


def admin(partner: str, user: str = "ada") -> Caller:
    return Caller(partner_id=partner, user_id=user, role="admin")


def accountant(partner: str, user: str) -> Caller:
    return Caller(partner_id=partner, user_id=user, role="accountant")


def firm() -> str:
    return f"firm-{uuid.uuid4().hex[:8]}"
