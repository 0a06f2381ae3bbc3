"""1. Ingest: platform events per second through client_directory (broker, validation, event
store, projection, tracking), beside the raw aiokafka consume rate and the event store's own
batched append rate, measured in the same run."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from eventsourcing.application import Application

from events.config import StoreUrl
from events.dialect import dialect_for
from events.inbox import ReceivedEvent
from events.kafka import tracking_name
from events.store import ReadModel
from services.client_directory.application.directory import ClientDirectory
from services.client_directory.bootstrap import CONSUMES
from services.client_directory.projections.clients import ClientsProjection
from tests.bench.common import Report, Row, Service, Stores, broker, directory_env, new_port
from tests.bench.workload import Record, platform_events

TOPICS = [t.value for t in CONSUMES]
APPEND_BATCH = 500


async def produce(bootstrap: str, records: Iterable[Record]) -> dict[TopicPartition, int]:
    """Send everything (large batches: small ones make every consumer slow); returns the end
    offset of each partition written."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1024 * 1024,
                                acks=1, max_request_size=2 * 1024 * 1024)
    await producer.start()
    ends: dict[TopicPartition, int] = {}
    try:
        futures = [await producer.send(r.topic, r.value, key=r.key) for r in records]
        for meta in await asyncio.gather(*futures):
            tp = TopicPartition(meta.topic, meta.partition)
            ends[tp] = max(ends.get(tp, 0), meta.offset + 1)
    finally:
        await producer.stop()
    return ends


async def raw_consume_rate(bootstrap: str, ends: dict[TopicPartition, int]) -> float:
    """aiokafka's getmany over every partition from the start: the broker and client's limit."""
    total = sum(ends.values())
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=1024 * 1024)
    await consumer.start()
    try:
        consumer.assign(list(ends))
        await consumer.seek_to_beginning()
        seen = 0
        started = time.perf_counter()
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            seen += sum(len(records) for records in batches.values())
        return total / (time.perf_counter() - started)
    finally:
        await consumer.stop()


class _Plain(Application[uuid.UUID]):
    name = "append_limit"


def store_append_rate(store_url: str, events: int) -> float:
    """The event store's own batched append rate: plain eventsourcing `save`, 500 new
    aggregates (one event each, of about the size of a platform event's effect) per transaction."""
    url = StoreUrl.parse("BENCH_DB", store_url)
    app = _Plain(dialect_for(url).eventsourcing_env(url))
    try:
        started = time.perf_counter()
        for _ in range(0, events, APPEND_BATCH):
            app.save(*[ReceivedEvent(event_id=str(uuid.uuid4()), event_type="client.metrics_updated.v1",
                                     partner_id="firm-00001", subject="firm-00001-client-000001",
                                     source="/bench", kafka_position="platform.client-metrics:0:123456",
                                     outcome="applied", reason="") for _ in range(APPEND_BATCH)])
        return events / (time.perf_counter() - started)
    finally:
        app.close()


class Progress:
    """Reads, from the service's own store, how far its consumer and projection are."""

    def __init__(self, store_url: str, ends: dict[TopicPartition, int]) -> None:
        self.app = ClientDirectory(StoreUrl.parse("BENCH_DB", store_url))
        self.read_model = ReadModel(self.app)
        self.ends = ends

    def consumed(self) -> int:
        """Records at or below the tracked positions."""
        done = 0
        for tp in self.ends:
            position = self.app.tracked(tracking_name(tp.topic, tp.partition))
            done += 0 if position is None else position + 1
        return done

    def head(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def projected(self) -> bool:
        head = self.head()
        return head > 0 and (self.read_model.tracked(ClientsProjection.name) or 0) >= head

    def close(self) -> None:
        self.app.close()


def run_service_until_applied(bootstrap: str, store_url: str, ends: dict[TopicPartition, int], folder: Path,
                              label: str, timeout: float = 600.0) -> tuple[float, float, float, int]:
    """Start client_directory as a process; returns (events/s from its first applied batch to
    the projection having applied everything, seconds from start to first batch, peak RSS MB,
    events in its store at the end)."""
    total = sum(ends.values())
    port = new_port()
    started = time.perf_counter()
    service = Service("services.client_directory",
                      directory_env(bootstrap, store_url, port, f"bench-{label}-{uuid.uuid4().hex[:6]}"),
                      folder / f"client_directory-{label}.log", port=port)
    progress: Progress | None = None
    try:
        service.wait_until("/readyz")  # its tables exist: reading them from here is safe
        progress = Progress(store_url, ends)
        first_at, first_done = 0.0, 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if service.process.poll() is not None:
                raise RuntimeError(f"client_directory exited with {service.process.returncode}; see {service.log}")
            now = time.perf_counter()
            done = progress.consumed()
            if done and not first_at:
                first_at, first_done = now, done
            if done >= total and progress.projected():
                if first_done >= total:  # everything fit in the first batches: no rate to speak of
                    first_at, first_done = started, 0
                head = progress.head()
                return (total - first_done) / (now - first_at), first_at - started, service.stop(), head
            time.sleep(0.02)
        raise TimeoutError(f"client_directory did not apply {total} events within {timeout}s")
    finally:
        if progress is not None:
            progress.close()
        service.stop()


def bench_ingest(report: Report, stores: Stores, folder: Path, kind: str, events: int, append_events: int,
                 memory: dict[str, float]) -> None:
    """On a broker of its own (holding only these events), so each store kind has its size."""
    with broker(folder) as running:
        ends = asyncio.run(produce(running.bootstrap, platform_events(events)))
        raw = asyncio.run(raw_consume_rate(running.bootstrap, ends))
        append = store_append_rate(stores.new(kind, "append"), append_events)
        rate, startup, peak, stored = run_service_until_applied(running.bootstrap, stores.new(kind, "ingest"), ends,
                                                                folder, kind)
    memory[f"client_directory (ingest, {kind})"] = peak
    report.add(Row("1 ingest", f"{kind}: raw aiokafka getmany, {events:,} records", raw, "records/s"))
    report.add(Row("1 ingest", f"{kind}: event store batched append ({APPEND_BATCH}/tx)", append, "events/s"))
    report.add(Row("1 ingest", f"{kind}: client_directory, {events:,} events broker to projection", rate, "events/s",
                   "store append", append, ">= 60%", rate >= 0.6 * append,
                   note=f"{startup:.1f}s from start to the first batch (group join) not counted; "
                        f"{stored / events:.2f} stored events per platform event (what it changed; its inbox "
                        f"entry is a table row), so the store took {rate * stored / events:,.0f} events/s"))
    report.add(Row("1 ingest", f"{kind}: client_directory vs raw consume", rate, "events/s", "raw getmany", raw))
