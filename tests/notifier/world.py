"""A notifier on a temporary store, fed CloudEvents through its real inbox (no broker), for
service-layer tests and for filling stores that subprocesses then use."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.events import EVENT_TYPES
from events.config import KafkaSettings, StoreUrl
from events.envelope import InboundRecord, parse_record
from events.inbox import InboxEntry
from events.outbox import OutboundMessage
from services.notifier.adapters.smtp import SmtpSettings
from services.notifier.bootstrap import bootstrap
from services.notifier.config import Settings
from services.notifier.domain.model import Delivery, Preference, preference_key
from services.notifier.domain.schedule import ZONE

MAIL_FROM = "Partner portal <no-reply@portal.test>"
SECRET = "test-unsubscribe-secret-0123456789abcdef"
LONG_AGO = datetime(2026, 1, 7, 12, 0, tzinfo=UTC)  # a Wednesday


def cph(y: int, mo: int, d: int, h: int = 10, mi: int = 0) -> datetime:
    """A Copenhagen wall time (10:00 by default: a digest slot on slot days)."""
    return datetime(y, mo, d, h, mi, tzinfo=ZONE)


def settings_for(store: StoreUrl, *, mail_from: str = MAIL_FROM, smtp: SmtpSettings | None = None) -> Settings:
    """The notifier's settings in these tests: nothing listens on the Kafka address."""
    return Settings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"), store=store, smtp=smtp or SmtpSettings(),
                    mail_from=mail_from, portal_base_url="https://portal.test",
                    public_base_url="https://notifier.test", http_host="127.0.0.1", http_port=8001,
                    unsubscribe_secret=SECRET)


class World:
    def __init__(self, store_url: str, mail_from: str = MAIL_FROM) -> None:
        self.store = StoreUrl.parse("NOTIFIER_DB", store_url)
        self.settings = settings_for(self.store, mail_from=mail_from)
        self.service = bootstrap(self.settings)
        self.notifier = self.service.notifier
        self.sink = self.service.sink
        self.index = self.service.index
        self.scheduler = self.service.scheduler
        self._offsets: dict[str, int] = defaultdict(lambda: -1)

    # --- facts, as the inbox receives them ---------------------------------------------------------

    def publish(self, type_: str, partner: str, data: dict[str, Any], *, at: datetime | None = None,
                event_id: str | None = None, topic: str | None = None) -> str:
        kind = EVENT_TYPES[type_]
        topic = topic or kind.topic.value
        subject = str(data[kind.subject_field])
        event_id = event_id or str(uuid.uuid4())
        value = json.dumps({
            "specversion": "1.0", "id": event_id, "source": "/tests", "type": type_,
            "time": (at or datetime.now(UTC)).isoformat(), "subject": subject, "partnerid": partner,
            "datacontenttype": "application/json", "data": data,
        }).encode()
        self._offsets[topic] += 1
        offset = self._offsets[topic]
        inbound = parse_record(InboundRecord(topic, 0, offset, subject.encode(), value))
        self.sink.apply(topic, 0, [inbound], offset)
        return event_id

    def member(self, partner: str, user: str, *, role: str = "accountant", locale: str = "en",
               name: str | None = None) -> None:
        self.publish("partner.member.added.v1", partner,
                     {"user_id": user, "email": f"{user}@firm.test", "name": name or user.title(), "role": role,
                      "locale": locale})

    def client(self, partner: str, client: str, *, name: str | None = None, status: str = "connected",
               accountants: tuple[str, ...] = ()) -> None:
        if status == "invited":
            self.publish("client.partner_invited.v1", partner, {"client_id": client, "client_name": name or client})
        else:
            self.publish("client.onboarding_started.v1", partner,
                         {"client_id": client, "client_name": name or client, "invited_by": "someone"})
            if status == "connected":
                self.publish("client.verification_completed.v1", partner, {"client_id": client})
        for user in accountants:
            self.assign(partner, client, user)

    def assign(self, partner: str, client: str, user: str) -> None:
        self.publish("client.accountant_assigned.v1", partner, {"client_id": client, "user_id": user})

    def unassign(self, partner: str, client: str, user: str) -> None:
        self.publish("client.accountant_unassigned.v1", partner, {"client_id": client, "user_id": user})

    def figures(self, partner: str, client: str, amount: str, currency: str = "EUR", missing: int = 0,
                ready: int = 0, as_of: datetime | None = None) -> None:
        self.publish("client.metrics_updated.v1", partner,
                     {"client_id": client, "wallet_balance": {"amount": amount, "currency": currency},
                      "missing_receipts": missing, "ready_to_export": ready,
                      "as_of": (as_of or datetime.now(UTC)).isoformat()})

    def prefer(self, partner: str, client: str, user: str, frequency: str = "weekly", *, enabled: bool = True,
               at: datetime = LONG_AGO) -> str:
        return self.publish("notification.preference_set.v1", partner,
                            {"client_id": client, "user_id": user, "email_enabled": enabled, "frequency": frequency},
                            at=at)

    def remind(self, partner: str, client: str, by: str, tasks: tuple[str, ...] = ("missing_receipts",),
               comment: str = "", reminder_id: str | None = None, at: datetime | None = None) -> str:
        reminder_id = reminder_id or str(uuid.uuid4())
        self.publish("notification.reminder_requested.v1", partner,
                     {"reminder_id": reminder_id, "client_id": client, "requested_by": by, "tasks": list(tasks),
                      "comment": comment}, at=at)
        return reminder_id

    # --- what the store holds ----------------------------------------------------------------------

    def events(self, topic: str) -> list[Any]:
        notes = self.notifier.recorder.select_notifications(start=None, limit=1_000_000, topics=[topic])
        return [self.notifier.mapper.to_domain_event(n) for n in notes]

    def deliveries(self, kind: str | None = None) -> list[Delivery]:
        found: list[Delivery] = [self.notifier.repository.get(e.originator_id) for e in self.events(Delivery.Due.TOPIC)]
        return [d for d in found if kind is None or d.kind == kind]

    def preference(self, partner: str, client: str, user: str) -> Preference:
        aggregate: Preference = self.notifier.repository.get(preference_key(partner, client, user))
        return aggregate

    def outbound(self, type_: str | None = None) -> list[dict[str, Any]]:
        messages = [e.cloud_event for e in self.events(OutboundMessage.Created.TOPIC)]
        return [m for m in messages if type_ is None or m["type"] == type_]

    def received(self) -> list[InboxEntry]:
        return self.notifier.inbox.inbox_entries(partner_id=None, subject=None, limit=1_000_000)

    def head(self) -> int:
        return self.notifier.recorder.max_notification_id() or 0


def digest_at(world: World, at: datetime) -> dict[str, list[str]]:
    """Run the scheduler at `at`; returns {user: sorted client ids} of the digests it made."""
    before = {d.id for d in world.deliveries("digest")}
    world.scheduler.run(at)
    made = [d for d in world.deliveries("digest") if d.id not in before]
    by_user: dict[str, list[str]] = {}
    for delivery in made:
        assert delivery.user_id not in by_user, "two digests for one recipient in one run"
        by_user[delivery.user_id] = sorted(delivery.client_ids)
    return by_user


def days(n: float) -> timedelta:
    return timedelta(days=n)
