"""A realistic, deterministic stream of platform events for fault tests: several firms, their
members, clients through every state, assignments and figures, valid in per-client order."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes
    value: bytes
    event_id: str
    partner: str


def cloud_event(type_: str, partner: str, subject: str, data: dict[str, Any], event_id: str,
                at: datetime) -> bytes:
    return json.dumps({"specversion": "1.0", "id": event_id, "source": "/faults", "type": type_,
                       "time": at.isoformat(), "subject": subject, "partnerid": partner,
                       "datacontenttype": "application/json", "data": data}).encode()


def workload(total: int, firms: int = 10, seed: int = 7) -> list[Record]:
    """About `total` records; the same seed gives the same records (ids included)."""
    rng = random.Random(seed)
    run = uuid.UUID(int=rng.getrandbits(128)).hex[:8]
    at = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    records: list[Record] = []

    def add(topic: str, type_: str, partner: str, subject: str, data: dict[str, Any]) -> None:
        nonlocal at
        at += timedelta(seconds=1)
        event_id = f"{run}-{len(records)}"
        records.append(Record(topic, subject.encode(), cloud_event(type_, partner, subject, data, event_id, at),
                              event_id, partner))

    partners = [f"firm-{run}-{n}" for n in range(firms)]
    members: dict[str, list[str]] = {}
    for partner in partners:
        members[partner] = [f"{partner}-u{n}" for n in range(6)]
        for n, user in enumerate(members[partner]):
            add("platform.partner-members", "partner.member.added.v1", partner, user,
                {"user_id": user, "email": f"{user}@firm.test", "name": f"Member {n}",
                 "role": "admin" if n < 2 else "accountant", "locale": "fr" if n % 2 else "en"})
    client_n = 0
    while len(records) < total:
        partner = rng.choice(partners)
        client = f"{partner}-c{client_n}"
        client_n += 1
        name = rng.choice(["Société", "Élodie", "Acme", "Zeta", "Café", "Bureau"]) + f" {client_n}"
        if rng.random() < 0.3:
            add("platform.partner-clients", "client.partner_invited.v1", partner, client,
                {"client_id": client, "client_name": name})
        else:
            add("platform.partner-clients", "client.onboarding_started.v1", partner, client,
                {"client_id": client, "client_name": name, "invited_by": members[partner][0]})
            outcome = rng.random()
            if outcome < 0.2:
                add("platform.partner-clients", "client.verification_failed.v1", partner, client,
                    {"client_id": client, "reason": "documents unreadable"})
            elif outcome < 0.9:
                add("platform.partner-clients", "client.verification_completed.v1", partner, client,
                    {"client_id": client})
        for user in rng.sample(members[partner][2:], rng.randint(0, 2)):
            add("platform.partner-clients", "client.accountant_assigned.v1", partner, client,
                {"client_id": client, "user_id": user})
        for step in range(rng.randint(0, 3)):
            amount = f"{rng.randint(-500, 90000)}.{rng.randint(0, 99):02d}"
            add("platform.client-metrics", "client.metrics_updated.v1", partner, client,
                {"client_id": client, "wallet_balance": {"amount": amount, "currency": "EUR"},
                 "missing_receipts": rng.randint(0, 30), "ready_to_export": rng.randint(0, 30),
                 "as_of": (at + timedelta(minutes=step)).isoformat()})
        if rng.random() < 0.05:
            add("platform.partner-clients", "client.renamed.v1", partner, client,
                {"client_id": client, "client_name": name + " SA"})
        if rng.random() < 0.03:
            add("platform.partner-clients", "client.disconnected.v1", partner, client, {"client_id": client})
        if rng.random() < 0.02:  # an illegal one: completing a verification twice
            add("platform.partner-clients", "client.verification_completed.v1", partner, client,
                {"client_id": client})
    return records


def produce(bootstrap: str, records: list[Record]) -> dict[tuple[str, int], int]:
    """Send everything (big batches: small ones make consumers slow); returns the end offsets."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=1024 * 1024, acks="all")
    for record in records:
        producer.send(record.topic, key=record.key, value=record.value)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    topics = {r.topic for r in records} or {"platform.partner-members", "platform.partner-clients",
                                            "platform.client-metrics"}
    partitions = [TopicPartition(t, p) for t in topics for p in range(3)]
    ends = consumer.end_offsets(partitions)
    consumer.close()
    return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}
