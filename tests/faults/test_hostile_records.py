"""5,000 hostile records interleaved with valid events: each hostile one lands in the
dead-letter topic with its reason, each valid one is applied, another firm's ids change
nothing of ours, and the consumer never stops (its lag returns to 0)."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.faults.workload import cloud_event, workload
from tests.harness import auth, client_directory, eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

HOSTILE = 5_000
VALID = 5_000


def hostile_records(rng: random.Random, valid: list, marker: str) -> list[tuple[str, bytes, bytes | None, str]]:
    """(kind, key, value, expected reason fragment); every key starts with the marker."""
    sample = [r.value for r in valid[:200]]
    out: list[tuple[str, bytes, bytes | None, str]] = []
    kinds = ["random_bytes", "truncated_json", "wrong_types", "missing_id", "unknown_type", "unknown_version",
             "not_an_object", "tombstone", "subject_mismatch", "no_time_zone", "huge"]
    for n in range(HOSTILE):
        kind = kinds[n % len(kinds)] if n < 60 * len(kinds) else rng.choice(kinds[:-1])
        if kind == "huge" and sum(1 for k, *_ in out if k == "huge") >= 5:
            kind = "random_bytes"
        key = f"{marker}-{n}".encode()
        base = json.loads(rng.choice(sample))
        if kind == "random_bytes":
            value: bytes | None = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
            reason = ""  # may fail as UTF-8, as JSON or as an envelope: any reason will do
        elif kind == "truncated_json":
            full = json.dumps(base).encode()
            value, reason = full[: rng.randint(1, len(full) - 2)], "not valid UTF-8 JSON"
        elif kind == "wrong_types":
            base["data"] = {k: [v] for k, v in base["data"].items()}
            value, reason = json.dumps(base).encode(), "data is invalid"
        elif kind == "missing_id":
            base.pop("id")
            value, reason = json.dumps(base).encode(), "id"
        elif kind == "unknown_type":
            base["type"] = "client.exploded.v1"
            value, reason = json.dumps(base).encode(), "unknown event type"
        elif kind == "unknown_version":
            base["type"] = base["type"].rsplit(".", 1)[0] + ".v9"
            value, reason = json.dumps(base).encode(), "unknown event type"
        elif kind == "not_an_object":
            value, reason = json.dumps([base]).encode(), "not a CloudEvent"
        elif kind == "tombstone":
            value, reason = None, "no value"
        elif kind == "subject_mismatch":
            base["subject"] = "someone-else"
            value, reason = json.dumps(base).encode(), "subject"
        elif kind == "no_time_zone":
            base["time"] = "2026-11-28T10:00:00"
            value, reason = json.dumps(base).encode(), "time"
        else:  # huge: valid JSON over the 1,000,000-byte limit
            base["data"]["padding"] = "x" * 1_000_100
            value, reason = json.dumps(base).encode(), "over the"
        out.append((kind, key, value, reason))
    return out


def read_dead_letters(bootstrap: str, marker: str) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000,
                             max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_bytes=16 * 1024 * 1024)
    topics = ["platform.partner-clients.dlq", "platform.client-metrics.dlq", "platform.partner-members.dlq"]
    consumer.assign([TopicPartition(t, p) for t in topics for p in range(3)])
    consumer.seek_to_beginning()
    found = [r for r in consumer if r.key and r.key.startswith(marker.encode())]
    consumer.close()
    return found


async def test_hostile_records_go_to_the_dead_letter_topic_and_valid_ones_are_applied(broker, stores) -> None:
    rng = random.Random()
    marker = f"hostile-{uuid.uuid4().hex[:8]}"
    valid = workload(VALID, firms=4, seed=rng.randrange(1 << 30))
    hostile = hostile_records(rng, valid, marker)
    victim = valid[0].partner
    # Valid events of another firm naming our client ids: legal for that firm, harmless to ours.
    foreign = [
        ("platform.partner-clients", r.key,
         cloud_event("client.verification_completed.v1", "firm-intruder", r.key.decode(),
                     {"client_id": r.key.decode()}, f"{marker}-foreign-{n}", datetime.now(UTC)))
        for n, r in enumerate(x for x in valid if x.topic == "platform.partner-clients")
        if n < 200
    ]
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20, batch_size=1024 * 1024,
                             max_request_size=4 * 1024 * 1024)
    topics = ["platform.partner-clients", "platform.client-metrics", "platform.partner-members"]
    mixed: list[tuple[str, bytes, bytes | None]] = [(r.topic, r.key, r.value) for r in valid]
    for _, key, value, _ in hostile:
        mixed.insert(rng.randrange(len(mixed) + 1), (rng.choice(topics), key, value))
    for topic, key, value in foreign:
        mixed.insert(rng.randrange(len(mixed) + 1), (topic, key, value))

    store = stores.new("sqlite")
    async with client_directory(broker.bootstrap, store) as (service, api):
        started = time.monotonic()
        for topic, key, value in mixed:
            producer.send(topic, key=key, value=value)
        producer.flush()
        ends = KafkaConsumer(bootstrap_servers=broker.bootstrap).end_offsets(
            [TopicPartition(t, p) for t in topics for p in range(3)])

        async def lag_is_zero() -> bool:
            return all((service.directory.tracked(f"kafka:{tp.topic}:{tp.partition}") or -1) >= end - 1
                       for tp, end in ends.items() if end > 0)

        await eventually(lag_is_zero, timeout=300, every=0.5)
        elapsed = time.monotonic() - started
        admin = f"{victim}-u0"
        page = (await api.get("/v1/clients", params={"tab": "all", "limit": 1},
                              headers=auth(admin, victim, "admin"))).json()
        assert page["tabs"], "the consumer stopped"

    letters = await asyncio.to_thread(read_dead_letters, broker.bootstrap, marker)
    by_key = {r.key: r for r in letters}
    assert len(by_key) == HOSTILE, f"{HOSTILE - len(by_key)} hostile records are not in the DLQ"
    kinds: Counter[str] = Counter()
    for kind, key, value, reason in hostile:
        letter = by_key[key]
        headers = dict(letter.headers)
        assert letter.value == value or (value is None and letter.value is None)
        assert headers["kafka_dlt-exception-message"], key
        assert reason.encode() in headers["kafka_dlt-exception-message"], (kind, headers)
        kinds[kind] += 1

    db = Path(store.removeprefix("sqlite:///"))
    with sqlite3.connect(db) as conn:
        received = {row[0] for row in conn.execute(
            "SELECT event_id FROM stored_inbox")}
        intruder_rows = conn.execute("SELECT COUNT(*) FROM cd_clients WHERE partner_id = 'firm-intruder' "
                                     "AND status != ''").fetchone()[0]
    missing = [r.event_id for r in valid if r.event_id not in received]
    assert not missing, f"{len(missing)} valid events were not applied"
    assert intruder_rows == 0  # the intruder's events were rejected: it never had those clients
    print(f"\n{len(mixed)} records ({HOSTILE} hostile {dict(kinds)}, {len(valid)} valid, {len(foreign)} foreign) "
          f"consumed to lag 0 in {elapsed:.1f}s; dead-lettered {len(by_key)}; valid applied {len(valid)}")
