"""The fact watermark (application/ports.py) from Kafka: the end offsets of the fact topics."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import TopicPartition

from events.kafka import TrackedConsumer, tracking_name
from services.notifier.application.ports import FactWatermark


def running_client(consumer: TrackedConsumer) -> Any | None:
    """The aiokafka consumer under the running subscriber, None before it started.
    FastStream 0.7 keeps it as the subscriber's `consumer` attribute and offers no public
    accessor; this is the one place that relies on it."""
    return getattr(consumer.subscriber, "consumer", None)


def end_offsets(client: Callable[[], Any | None], topics: Sequence[str]) -> FactWatermark:
    """End offsets of `topics` through the running aiokafka consumer (any partition, not only
    the ones this replica owns: the store tracks every partition's position)."""

    async def marks() -> dict[str, int] | None:
        kafka = client()
        if kafka is None:
            return None
        partitions = []
        for topic in topics:
            ids = kafka.partitions_for_topic(topic)
            partitions += [TopicPartition(topic, p) for p in sorted(ids or ())]
        if not partitions:
            return None
        ends = await kafka.end_offsets(partitions)
        starts = await kafka.beginning_offsets(partitions)
        # A partition with nothing retained has nothing to wait for.
        return {tracking_name(tp.topic, tp.partition): end - 1 for tp, end in ends.items() if end > starts[tp]}

    return marks
