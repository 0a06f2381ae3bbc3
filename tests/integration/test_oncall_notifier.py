"""On-call commands of the notifier on real data (broker, stores, SMTP servers), run as
subprocesses: what was sent to whom and how it ended (a 550 included), a history with a
rejected event's reason, dead letters listed and redriven once, and replays of every consumed
partition that send nothing and make no Delivery, with the service running or stopped."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from events.config import KafkaSettings
from events.kafka import tracking_name
from events.ops import partitions_of
from services.notifier.application.notifier import Notifier
from services.notifier.application.reminders import ReminderDispatcher
from services.notifier.application.sender import MailSender
from services.notifier.bootstrap import CONSUMES, NotifierService
from services.notifier.bootstrap import bootstrap as bootstrap_notifier
from services.notifier.domain.model import Delivery, Reminder, delivery_key
from services.notifier.emails.render import reminder_message_id
from tests.conftest import Publish, unique
from tests.harness import eventually, notifier
from tests.notifier.test_smtp import Handler, smtp_server

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
MAIL_FROM = "Partner portal <no-reply@portal.test>"  # tests.harness.notifier's


def cli(bootstrap: str, store: str, *args: str, expect: int = 0, group: str = "notifier"
        ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFIER_", "SMTP_", "KAFKA_"))}
    env.update(NOTIFIER_DB=store, KAFKA_BOOTSTRAP_SERVERS=bootstrap, MAIL_FROM=MAIL_FROM, COLUMNS="250",
               NOTIFIER_GROUP_ID=group)
    result = subprocess.run([sys.executable, "-m", "services.notifier", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == expect, result.stdout + result.stderr
    return result


def member(publish: Publish, firm: str, user: str, name: str, role: str, locale: str = "en") -> None:
    publish("platform.partner-members", "partner.member.added.v1", firm,
            {"user_id": user, "email": f"{user}@firm.test", "name": name, "role": role, "locale": locale})


def count(app: Notifier, topic: str) -> int:
    total, start = 0, 0
    while page := app.recorder.select_notifications(start=start, limit=5000, topics=[topic],
                                                    inclusive_of_start=False):
        total += len(page)
        start = page[-1].id
    return total


def behind(service: NotifierService, bootstrap: str) -> list[str]:
    """What the service has still to do: partitions not consumed to their end, reminders not
    dispatched, deliveries not sent (empty when it is quiet)."""
    app = service.notifier
    consumer = KafkaConsumer(**KafkaSettings(bootstrap_servers=bootstrap).kafka_python_kwargs(),
                             enable_auto_commit=False)
    try:
        parts = [TopicPartition(t.value, p) for t in CONSUMES for p in consumer.partitions_for_topic(t.value) or ()]
        ends = consumer.end_offsets(parts)
    finally:
        consumer.close()
    late = []
    for tp, end in ends.items():
        position = app.tracked(tracking_name(tp.topic, tp.partition))
        if end and (position is None or position < end - 1):
            late.append(f"{tp.topic}[{tp.partition}] at {position} of {end - 1}")
    for name, topic in ((ReminderDispatcher.name, Reminder.Requested.TOPIC), (MailSender.name, Delivery.Due.TOPIC)):
        if (app.tracked(name) or 0) < _last_id(app, topic):
            late.append(f"{name} at {app.tracked(name)} of {_last_id(app, topic)}")
    return late


def _last_id(app: Notifier, topic: str) -> int:
    last, start = 0, 0
    while page := app.recorder.select_notifications(start=start, limit=5000, topics=[topic],
                                                    inclusive_of_start=False):
        last = start = page[-1].id
    return last


async def quiet(service: NotifierService, bootstrap: str, timeout: float = 90.0) -> None:
    """Wait until the service has nothing left to do (it consumes every test's records)."""
    deadline = time.monotonic() + timeout
    while late := await asyncio.to_thread(behind, service, bootstrap):
        assert time.monotonic() < deadline, f"still busy after {timeout}s: {late}"
        await asyncio.sleep(0.3)


async def test_on_call_sees_deliveries_histories_and_dead_letters(
    broker, stores, store_kind: str, publish: Publish, producer
) -> None:
    firm, client, admin, chloe, bob, otto = (unique(n) for n in ("firm", "client", "admin", "chloe", "bob", "otto"))
    store = stores.new(store_kind)
    reminder_id = str(uuid.uuid4())
    poison = unique("poison")
    handler = Handler(rcpt_replies={f"{bob}@firm.test": "550 5.1.1 No such mailbox"})
    group = unique("notifier")  # the CLI redrives what this service's group dead-lettered
    async with smtp_server(handler) as smtp, \
            notifier(broker.bootstrap, store, smtp.port, group_id=group) as (service, _):
        member(publish, firm, admin, "Ada Admin", "admin")
        member(publish, firm, chloe, "Chloé", "accountant", "fr")
        member(publish, firm, bob, "Bob", "accountant")
        publish("platform.partner-clients", "client.onboarding_started.v1", firm,
                {"client_id": client, "client_name": "Société Générale", "invited_by": admin})
        for user in (chloe, bob):
            publish("platform.partner-clients", "client.accountant_assigned.v1", firm,
                    {"client_id": client, "user_id": user})
        # Valid, but illegal in the state the notifier has: recorded as rejected, with the reason.
        publish("platform.partner-clients", "client.accountant_unassigned.v1", firm,
                {"client_id": client, "user_id": otto})
        producer.send("portal.client-directory", key=poison.encode(), value=b"{not json")
        producer.flush()
        publish("portal.notifications", "notification.reminder_requested.v1", firm,
                {"reminder_id": reminder_id, "client_id": client, "requested_by": admin,
                 "tasks": ["missing_receipts"], "comment": "Merci !"})

        async def settled_both() -> bool:
            states: list[str] = []
            for user in (chloe, bob):
                key = delivery_key(reminder_message_id(reminder_id, user, MAIL_FROM))
                if key not in service.notifier.repository:
                    return False
                states.append(service.notifier.repository.get(key).state)
            return states == ["sent", "failed"]

        await eventually(settled_both, timeout=60)
        await quiet(service, broker.bootstrap)

    found = json.loads(cli(broker.bootstrap, store, "deliveries", "--client", client, "--json").stdout)
    by_user = {d["user_id"]: d for d in found["deliveries"]}
    assert set(by_user) == {chloe, bob}
    assert by_user[chloe]["state"] == "sent" and by_user[chloe]["outcome"].startswith("250")
    assert by_user[chloe]["message_id"] == reminder_message_id(reminder_id, chloe, MAIL_FROM)
    assert by_user[chloe]["recipient"] == f"Chloé <{chloe}@firm.test>" and by_user[chloe]["kind"] == "reminder"
    assert by_user[bob]["state"] == "failed" and by_user[bob]["outcome"].startswith("550")
    assert by_user[bob]["attempts"] >= 1 and by_user[bob]["client_ids"] == [client]
    [reminder] = found["reminders"]
    assert reminder["state"] == "dispatched" and sorted(reminder["recipients"]) == sorted([chloe, bob])
    table = cli(broker.bootstrap, store, "deliveries", "--user", bob).stdout
    assert "failed" in table and "550" in table and reminder_message_id(reminder_id, bob, MAIL_FROM) in table
    requested = cli(broker.bootstrap, store, "deliveries", "--user", admin).stdout
    assert "no email was ever made" in requested and reminder_id in requested and "dispatched" in requested

    history = json.loads(cli(broker.bootstrap, store, "events", "show", "--client", client, "--partner", firm,
                             "--json").stdout)
    # In the order they were applied: the client's own records in their partition's order; the
    # reminder, on another topic, may have been read before them.
    outcomes = [(e["type"], e["outcome"]) for e in history["inbound_events"]]
    assert [o for o in outcomes if o[0].startswith("client.")] == [
        ("client.onboarding_started.v1", "applied"), ("client.accountant_assigned.v1", "applied"),
        ("client.accountant_assigned.v1", "applied"), ("client.accountant_unassigned.v1", "rejected")]
    assert ("notification.reminder_requested.v1", "applied") in outcomes and len(outcomes) == 5
    [rejected] = [e for e in history["inbound_events"] if e["outcome"] == "rejected"]
    assert rejected["reason"] == f"{otto} is not assigned to client {client}"
    stored = history["stored_events"]
    assert [e["event"] for e in stored[f"{firm}/ClientFile"]][:2] == ["ClientFile.Opened", "ClientFile.Started"]
    assert [e["event"] for e in stored[f"{firm}/Reminder {reminder_id}"]] == ["Reminder.Requested",
                                                                           "Reminder.Dispatched"]
    shown = cli(broker.bootstrap, store, "events", "show", "--member", chloe).stdout
    assert "Member.Added" in shown and "partner.member.added.v1" in shown
    cli(broker.bootstrap, store, "events", "show", "--client", unique("nobody"), expect=1)

    listed = cli(broker.bootstrap, store, "dlq", "list", "--topic", "portal.client-directory").stdout
    assert poison in listed and "JSONDecodeError" in listed
    first = cli(broker.bootstrap, store, "dlq", "redrive", "--topic", "portal.client-directory", group=group).stdout
    assert "redriven" in first and " 0 dead letters" not in first
    again = cli(broker.bootstrap, store, "dlq", "redrive", "--topic", "portal.client-directory", group=group).stdout
    assert "redriven 0 dead letters" in again
    refused = cli(broker.bootstrap, store, "topics", "replay", "--topic", "portal.notification-deliveries",
                  "--partition", "0", "--from-offset", "0", expect=2).stdout
    assert "not consumed by this service" in refused


@pytest.mark.parametrize(("store_kind", "running"), [("sqlite", True), ("postgresql", False)])
async def test_a_replay_of_every_consumed_partition_never_sends_an_email(
    broker, smtp, stores, store_kind: str, running: bool, publish: Publish
) -> None:
    smtp_port, sink = smtp
    firm, client, admin, chloe = (unique(n) for n in ("firm", "client", "admin", "chloe"))
    store = stores.new(store_kind)
    async with notifier(broker.bootstrap, store, smtp_port) as (service, _):
        member(publish, firm, admin, "Ada Admin", "admin")
        member(publish, firm, chloe, "Chloé", "accountant", "fr")
        publish("platform.partner-clients", "client.onboarding_started.v1", firm,
                {"client_id": client, "client_name": "Acme", "invited_by": admin})
        publish("platform.partner-clients", "client.accountant_assigned.v1", firm,
                {"client_id": client, "user_id": chloe})
        publish("portal.notifications", "notification.preference_set.v1", firm,
                {"client_id": client, "user_id": chloe, "email_enabled": True, "frequency": "daily"})
        publish("portal.notifications", "notification.reminder_requested.v1", firm,
                {"reminder_id": str(uuid.uuid4()), "client_id": client, "requested_by": admin,
                 "tasks": ["ready_to_export"], "comment": ""})
        await eventually(lambda: _to(sink, chloe), timeout=60)
        await quiet(service, broker.bootstrap)
        if running:
            outcome = await asyncio.to_thread(replay_everything, broker.bootstrap, store, service.notifier, sink)
            await asyncio.sleep(2.0)  # the sender, dispatcher and scheduler would act within a second
    if not running:
        outcome = await asyncio.to_thread(replay_everything, broker.bootstrap, store,
                                          bootstrap_notifier(service.settings).notifier, sink)
    before, after = outcome
    assert after == before, (before, after)
    assert len(sink.to(f"{chloe}@firm.test")) == 1


def replay_everything(bootstrap: str, store: str, app: Notifier, sink: Any) -> tuple[dict[str, int], dict[str, int]]:
    """Replay every partition of every consumed topic from offset 0 through the CLI; what the
    store and the SMTP sink held before and after (the sink's count read last, after a pause)."""
    def state() -> dict[str, int]:
        return {"deliveries": count(app, Delivery.Due.TOPIC), "reminders": count(app, Reminder.Requested.TOPIC),
                "inbound": app.inbox.inbox_count(), "emails": len(sink.messages)}

    before = state()
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    replays = 0
    for topic in CONSUMES:
        for partition in partitions_of(kafka, topic.value):
            out = cli(bootstrap, store, "topics", "replay", "--topic", topic.value, "--partition", str(partition),
                      "--from-offset", "0").stdout
            assert " 0 applied" in out, out
            replays += 1
    assert replays >= len(CONSUMES)
    time.sleep(1.0)
    return before, state()


async def _to(sink: Any, user: str) -> bool:
    return bool(sink.to(f"{user}@firm.test"))
