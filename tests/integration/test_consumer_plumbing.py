"""The shared consumer through the real broker: a redelivered event changes nothing, a
restart resumes from the store's tracked positions, and unreadable records go to the DLQ with
their original key and bytes."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from services.client_directory.domain.model import client_key
from tests.conftest import Publish, unique
from tests.harness import auth, client_directory, eventually

pytestmark = pytest.mark.integration


def received_count(service) -> int:
    return int(service.directory.inbox.inbox_count())


def read_topic(bootstrap: str, topic: str, partitions: int = 3) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=1500, enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    consumer.seek_to_beginning()
    records = list(consumer)
    consumer.close()
    return records


async def an_invitation_applies_after(publish: Publish, api, client_name: str) -> None:  # type: ignore[no-untyped-def]
    """A firm's admin and one invited client, published after whatever the test sent: the
    consumer went on when the invitation shows on the admin's Invitations tab."""
    firm, admin = unique("firm"), unique("admin")
    publish("platform.partner-members", "partner.member.added.v1", firm,
            {"user_id": admin, "email": f"{admin}@firm.test", "name": "Ada", "role": "admin", "locale": "en"})
    publish("platform.partner-clients", "client.partner_invited.v1", firm,
            {"client_id": unique("c"), "client_name": client_name})

    async def applied() -> bool:
        response = await api.get("/v1/clients", params={"tab": "invitations"},
                              headers=auth(admin, firm, "admin"))
        # 403 until the admin's membership is applied: keep waiting
        return response.status_code == 200 and len(response.json()["items"]) == 1

    await eventually(applied)


async def test_a_redelivered_event_changes_nothing_and_a_restart_resumes_where_it_was(
    broker, stores, store_kind: str, publish: Publish
) -> None:
    firm, admin = unique("firm"), unique("admin")
    store = stores.new(store_kind)
    group = f"cd-{uuid.uuid4().hex[:6]}"
    member = {"user_id": admin, "email": f"{admin}@firm.test", "name": "Ada", "role": "admin", "locale": "en"}
    async with client_directory(broker.bootstrap, store, group_id=group) as (service, api):
        publish("platform.partner-members", "partner.member.added.v1", firm, member)
        invited = {"client_id": "c-1", "client_name": "Acme"}
        event_id = publish("platform.partner-clients", "client.partner_invited.v1", firm, invited)
        # The same event again, as a new record at a new offset.
        publish("platform.partner-clients", "client.partner_invited.v1", firm, invited, event_id=event_id)
        marker = publish("platform.partner-clients", "client.partner_invited.v1", firm,
                         {"client_id": "c-2", "client_name": "Beta"})

        async def both_invited() -> bool:
            response = await api.get("/v1/clients", params={"tab": "invitations"},
                                  headers=auth(admin, firm, "admin"))
            # 403 until the admin's membership is applied: keep waiting
            return response.status_code == 200 and len(response.json()["items"]) == 2

        await eventually(both_invited)
        assert marker
        events_before = service.directory.recorder.max_notification_id() or 0
        applied = received_count(service)
        relationship: Any = service.directory.repository.get(client_key(firm, "c-1"))
        assert relationship.version == 1  # invited once, not twice
        assert applied >= 3

    # A new instance of the same group on the same store resumes from the tracked positions.
    async with client_directory(broker.bootstrap, store, group_id=group) as (service, api):
        publish("platform.partner-clients", "client.renamed.v1", firm, {"client_id": "c-2", "client_name": "Beta 2"})

        async def renamed() -> bool:
            response = await api.get("/v1/clients", params={"tab": "invitations", "q": "beta 2"},
                                  headers=auth(admin, firm, "admin"))
            # 403 until the admin's membership is applied: keep waiting
            return response.status_code == 200 and len(response.json()["items"]) == 1

        await eventually(renamed)
        # Only the rename (and its inbox entry) were added: nothing earlier was applied again.
        assert service.directory.recorder.max_notification_id() == events_before + 1
        assert received_count(service) == applied + 1


async def test_unreadable_records_go_to_the_dead_letter_topic_and_the_consumer_goes_on(
    broker, stores, publish: Publish, producer
) -> None:
    async with client_directory(broker.bootstrap, stores.new("sqlite")) as (_, api):
        poison_key = unique("poison").encode()
        producer.send("platform.partner-clients", key=poison_key, value=b'{"truncated": ',
                      headers=[("traceparent", b"00-1")])
        producer.send("platform.partner-clients", key=poison_key,
                      value=b'{"specversion":"1.0","id":"x","source":"/s","type":"client.exploded.v1",'
                            b'"time":"2026-01-01T00:00:00Z","subject":"c","partnerid":"f","data":{}}')
        producer.flush()
        await an_invitation_applies_after(publish, api, "After the poison")

        async def dead_letters() -> list:
            records = await asyncio.to_thread(read_topic, broker.bootstrap, "platform.partner-clients.dlq")
            mine = [r for r in records if r.key == poison_key]
            return mine if len(mine) >= 2 else []

        letters = await eventually(dead_letters)
        by_value = {r.value: dict(r.headers) for r in letters}
        truncated = by_value[b'{"truncated": ']
        assert truncated["traceparent"] == b"00-1"
        assert truncated["kafka_dlt-original-topic"] == b"platform.partner-clients"
        assert truncated["kafka_dlt-exception-fqcn"] == b"json.decoder.JSONDecodeError"
        assert int(truncated["kafka_dlt-original-offset"]) >= 0
        unknown = next(h for v, h in by_value.items() if b"client.exploded.v1" in v)
        assert b"unknown event type" in unknown["kafka_dlt-exception-message"]


async def test_a_record_whose_reading_fails_unexpectedly_is_dead_lettered_not_lost(
    broker, stores, publish: Publish, producer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure no validation rule foresaw (a bug, a library's surprise) while reading one
    record: that record goes to the DLQ with the error's name; the fetch's others apply."""
    import events.kafka

    parse = events.kafka.parse_record
    odd_key = unique("odd").encode()

    def parse_or_trip(record):  # type: ignore[no-untyped-def]
        if record.key == odd_key:
            raise RecursionError("maximum recursion depth exceeded")
        return parse(record)

    monkeypatch.setattr(events.kafka, "parse_record", parse_or_trip)
    async with client_directory(broker.bootstrap, stores.new("sqlite")) as (_, api):
        producer.send("platform.partner-clients", key=odd_key, value=b'{"odd": true}')
        producer.flush()
        await an_invitation_applies_after(publish, api, "Beside the odd one")

        async def dead_letter() -> list:
            records = await asyncio.to_thread(read_topic, broker.bootstrap, "platform.partner-clients.dlq")
            return [r for r in records if r.key == odd_key]

        [letter] = await eventually(dead_letter)
        headers = dict(letter.headers)
        assert letter.value == b'{"odd": true}'
        assert headers["kafka_dlt-exception-fqcn"] == b"builtins.RecursionError"
        assert b"unreadable: RecursionError" in headers["kafka_dlt-exception-message"]
