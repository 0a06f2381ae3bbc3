"""Kafka plumbing on FastStream: the broker, the tracked batch consumer and dead-lettering.

Effectively-once: a batch's effects and its Kafka positions are saved in one store transaction
by the sink; the Kafka commit afterwards only saves refetching. A record at or below the
tracked position is skipped, so a redelivered record changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import TopicPartition
from eventsourcing.persistence import IntegrityError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from events import tracing
from events.config import KafkaSettings
from events.dlq import dead_letter
from events.envelope import InboundEvent, InboundRecord, InvalidRecord, parse_record
from events.metrics import CONSUMER_LAG, EVENTS_DUPLICATE, RECORDS_CONSUMED, RECORDS_DEAD_LETTERED

log = logging.getLogger("events.kafka")


def tracking_name(topic: str, partition: int) -> str:
    return f"kafka:{topic}:{partition}"


@dataclass(frozen=True)
class PartitionBatch:
    """A partition's share of a fetch: its events and the last offset they cover."""

    topic: str
    partition: int
    events: Sequence[InboundEvent]
    last_offset: int


class EventSink(Protocol):
    """What a service gives the consumer: apply a fetch atomically with its partitions' positions."""

    service: str

    def positions(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int | None]:
        """The last offset applied for each partition, or None."""

    def apply_batches(self, batches: Sequence[PartitionBatch]) -> dict[str, int]:
        """Apply the batches' events and record each one's `last_offset` in one transaction.

        Returns how many events were duplicates (already processed ids), per topic.
        Raises eventsourcing IntegrityError if a position was already recorded.
        """


def make_broker(settings: KafkaSettings, client_id: str, **kwargs: Any) -> KafkaBroker:
    security: BaseSecurity | None = None
    if settings.security_protocol != "PLAINTEXT":
        import ssl

        with_tls = "SSL" in settings.security_protocol
        context = ssl.create_default_context(cafile=settings.ssl_cafile) if with_tls else None
        if settings.sasl_mechanism:
            cls = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}[
                settings.sasl_mechanism
            ]
            security = cls(
                username=settings.sasl_username or "",
                password=settings.sasl_password or "",
                ssl_context=context,
            )
        else:
            security = BaseSecurity(ssl_context=context)
    return KafkaBroker(
        settings.bootstrap_servers.split(","),
        client_id=client_id,
        security=security,
        acks=settings.acks if settings.acks == "all" else int(settings.acks),
        enable_idempotence=settings.enable_idempotence,
        linger_ms=5,
        max_batch_size=1024 * 1024,
        request_timeout_ms=15_000,
        # FastStream's own lines go through our JSON logging, one event per line.
        logger=logging.getLogger("faststream"),
        **kwargs,
    )


async def _raw(msg: StreamMessage[Any]) -> Any:
    # Bytes stay bytes: we validate ourselves, so a malformed record reaches the handler.
    return msg.body


def _headers(headers: Any) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, v if isinstance(v, bytes) else bytes(v or b"")) for k, v in headers)


def _to_record(raw: Any) -> InboundRecord:
    return InboundRecord(
        topic=raw.topic,
        partition=raw.partition,
        offset=raw.offset,
        key=raw.key,
        value=raw.value,
        headers=_headers(raw.headers) if raw.headers else (),
        timestamp_ms=raw.timestamp or 0,
    )


class TrackedConsumer:
    """Subscribes a sink to topics as one consumer group, in batches, with manual commits."""

    def __init__(
        self,
        broker: KafkaBroker,
        sink: EventSink,
        topics: Iterable[str],
        group_id: str,
        *,
        max_records: int = 5000,  # large fetches: a fetch is one store transaction
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3_000,
    ) -> None:
        self.broker = broker
        self.sink = sink
        self.topics = list(topics)
        self.group_id = group_id
        self.ready = False
        self.last_batch_at = 0.0
        # A failing store is retried this often (doubling the delay) before the batch is
        # rewound and fetched again: long enough to ride out a restart, short of max_poll.
        self.retry_attempts = 8
        self.retry_delay = 0.2
        self.subscriber = broker.subscriber(
            *self.topics,
            group_id=group_id,
            batch=True,
            max_records=max_records,
            batch_timeout_ms=100,
            # How long the broker may hold a fetch on partitions with nothing new (aiokafka:
            # 500 ms); records arriving meanwhile wait for it: freshness p50 -30% at 1,000/s.
            fetch_max_wait_ms=20,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.MANUAL,
            decoder=_raw,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            rebalance_timeout_ms=session_timeout_ms * 2,
            max_poll_interval_ms=300_000,
        )
        self.subscriber(self.handle)

    async def handle(self, body: Any, msg: KafkaMessage) -> None:
        raws = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
        by_partition: dict[tuple[str, int], list[InboundRecord]] = defaultdict(list)
        for raw in raws:
            record = _to_record(raw)
            by_partition[(record.topic, record.partition)].append(record)
        for (topic, _), records in by_partition.items():
            RECORDS_CONSUMED.labels(self.sink.service, topic).inc(len(records))
        if not await self._process(by_partition):
            # The store stayed unavailable: rewind every partition of the fetch (their fetch
            # positions moved past records that are not in the store) and commit nothing, so
            # all of them come again.
            for (topic, partition), records in by_partition.items():
                msg.consumer.seek(TopicPartition(topic, partition), records[0].offset)  # type: ignore[attr-defined]
            return
        self.last_batch_at = time.monotonic()
        try:
            await msg.ack()
        except Exception as error:  # a rebalance: the store's positions still hold
            log.warning("kafka commit failed (%s); positions are safe in the store", error)
        self._update_lag(msg, by_partition)

    async def _process(self, by_partition: dict[tuple[str, int], list[InboundRecord]]) -> bool:
        """Apply the whole fetch as one store transaction (every partition's events and
        position), retrying while the store fails. False if it stayed unavailable."""
        parsed: dict[tuple[str, int, int], InboundEvent | InvalidRecord] = {}
        for records in by_partition.values():
            for record in records:
                at = (record.topic, record.partition, record.offset)
                try:
                    parsed[at] = parse_record(record)
                except InvalidRecord as error:
                    parsed[at] = error
                except Exception as error:  # a record no rule foresaw: kept in the DLQ, not lost
                    log.exception("parsing %s[%d]@%d failed unexpectedly", *at)
                    parsed[at] = InvalidRecord(f"unreadable: {type(error).__name__}: {error}",
                                               f"{type(error).__module__}.{type(error).__qualname__}")
        tracer = tracing.tracer(self.sink.service)
        spans = _consume_spans(tracer, parsed.values()) if tracer is not None else ()
        try:
            return await self._apply(by_partition, parsed)
        finally:
            for span in spans:
                span.end()

    async def _apply(self, by_partition: dict[tuple[str, int], list[InboundRecord]],
                     parsed: dict[tuple[str, int, int], InboundEvent | InvalidRecord]) -> bool:
        dead_lettered: set[tuple[str, int, int]] = set()
        delay = self.retry_delay
        for attempt in range(1, self.retry_attempts + 1):
            try:
                positions = await asyncio.to_thread(self.sink.positions, list(by_partition))
                batches: list[PartitionBatch] = []
                for (topic, partition), records in by_partition.items():
                    last = positions.get((topic, partition))
                    fresh = [r for r in records if last is None or r.offset > last]
                    if not fresh:
                        continue  # applied before (a redelivery, or another member first)
                    events: list[InboundEvent] = []
                    for record in fresh:
                        at = (record.topic, record.partition, record.offset)
                        outcome = parsed[at]
                        if isinstance(outcome, InvalidRecord):
                            if at not in dead_lettered:  # once, also when the store is retried
                                await self._dead_letter(record, outcome)
                                dead_lettered.add(at)
                        else:
                            events.append(outcome)
                    batches.append(PartitionBatch(topic, partition, events, fresh[-1].offset))
                if not batches:
                    return True
                duplicates = await asyncio.to_thread(self.sink.apply_batches, batches)
                for topic, count in duplicates.items():
                    EVENTS_DUPLICATE.labels(self.sink.service, topic).inc(count)
                return True
            except IntegrityError:
                # Another member recorded a position first (a rebalance): re-read and skip it.
                continue
            except Exception:
                first, last_partition = next(iter(by_partition)), list(by_partition)[-1]
                log.exception(
                    "applying a fetch of %d partitions (%s[%d] .. %s[%d]) failed (attempt %d); retrying in %.1fs",
                    len(by_partition), *first, *last_partition, attempt, delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        return False

    async def _dead_letter(self, record: InboundRecord, error: InvalidRecord) -> None:
        topic, key, value, headers = dead_letter(record, error, self.group_id)
        log.warning(
            "dead-lettered %s[%d]@%d to %s: %s", record.topic, record.partition, record.offset, topic, error
        )
        await publish_raw(self.broker, topic, key, value, headers)
        RECORDS_DEAD_LETTERED.labels(self.sink.service, record.topic).inc()

    def _update_lag(self, msg: KafkaMessage, by_partition: dict[tuple[str, int], list[InboundRecord]]) -> None:
        consumer: Any = msg.consumer
        for (topic, partition), records in by_partition.items():
            try:
                end = consumer.highwater(TopicPartition(topic, partition))
            except Exception:
                end = None
            if end is not None:
                CONSUMER_LAG.labels(self.sink.service, topic, str(partition)).set(
                    max(0, end - records[-1].offset - 1)
                )


def _consume_spans(tracer: tracing.Tracer, outcomes: Iterable[InboundEvent | InvalidRecord]) -> list[tracing.Span]:
    """A consumer span per event of the fetch, child of the context it came with; each event
    keeps its span, the parent of its handler's (events.tracing.traced_handler)."""
    spans = []
    for inbound in outcomes:
        if isinstance(inbound, InvalidRecord):
            continue
        record, envelope = inbound.record, inbound.envelope
        parent = tracing.parent_of(envelope.traceparent, envelope.tracestate, record.headers)
        span = tracer.start_span(
            f"consume {record.topic}", context=tracing.span_context(parent), kind=tracing.SpanKind.CONSUMER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": record.topic,
                        "messaging.kafka.destination.partition": record.partition,
                        "messaging.kafka.offset": record.offset, "cloudevents.event_id": inbound.id,
                        "cloudevents.event_type": inbound.type})
        object.__setattr__(inbound, "span", span)  # a frozen dataclass: set once, here
        spans.append(span)
    return spans


async def publish_raw(
    broker: KafkaBroker, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
) -> None:
    """Publish bytes as they are (dead letters keep the original bytes and key)."""
    producer: Any = broker.config.producer
    aio = getattr(producer, "_producer", None)
    aio = getattr(aio, "producer", aio)
    if aio is not None and hasattr(aio, "send_and_wait"):
        await aio.send_and_wait(topic, value=value, key=key, headers=headers)
        return
    await broker.publish(
        value or b"", topic, key=key, headers={k: v.decode("utf-8", "replace") for k, v in headers}
    )
