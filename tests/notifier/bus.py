"""Reading what the notifier published on Kafka (kafka-python's assign(), which works with the
local broker where its group consumer does not)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, TopicPartition


def read_events(bootstrap: str, topic: str, partner: str, partitions: int = 3) -> list[dict[str, Any]]:
    """Every CloudEvent of `partner` on `topic`, from the beginning."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=1000, enable_auto_commit=False)
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        consumer.seek_to_beginning()
        events = [json.loads(record.value) for record in consumer]
    finally:
        consumer.close()
    return [e for e in events if e.get("partnerid") == partner]


async def wait_for_events(bootstrap: str, topic: str, partner: str, enough: Callable[[list[dict[str, Any]]], bool],
                          timeout: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        events = await asyncio.to_thread(read_events, bootstrap, topic, partner)
        if enough(events) or time.monotonic() > deadline:
            return events
        await asyncio.sleep(0.3)
