"""Reading the services' stores and the broker from outside, as on-call would: tracked
positions, heads of the notification logs, inbox sizes, deliveries, dead letters."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import psycopg
from kafka import KafkaConsumer, TopicPartition

OUTBOX_TOPIC = "events.outbox:OutboundMessage.Created"
PLATFORM_TOPICS = ("platform.partner-members", "platform.partner-clients", "platform.client-metrics")
# The client directory also reads the notifier's outcomes (for the reminder history).
CD_TOPICS = (*PLATFORM_TOPICS, "portal.notifications", "portal.notification-deliveries")
NT_TOPICS = (*PLATFORM_TOPICS, "portal.notifications", "portal.client-directory")
ALL_TOPICS = (*NT_TOPICS, "portal.notification-deliveries")
PARTITIONS = 3


class Store:
    """One service's store: `prefix` names its PostgreSQL tables (client_directory, notifier)."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite:///")
        self.events = "stored_events" if self.sqlite else f"{prefix}_events"
        self.tracking_table = "tracking" if self.sqlite else f"{prefix}_tracking"
        self.inbox = "stored_inbox" if self.sqlite else f"{prefix}_inbox"
        self.notification_id = "rowid" if self.sqlite else "notification_id"

    @contextlib.contextmanager
    def _connect(self) -> Iterator[Any]:
        if self.sqlite:
            path = self.url.removeprefix("sqlite:///")
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
            try:
                yield conn
            finally:
                conn.close()
        else:
            with psycopg.connect(self.url, connect_timeout=5) as pg:
                yield pg

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if not self.sqlite:
            sql = sql.replace("?", "%s")
        try:
            with self._connect() as conn:
                return list(conn.execute(sql, params).fetchall())
        except (sqlite3.OperationalError, psycopg.errors.UndefinedTable):
            return []  # not created yet

    def tracking(self) -> dict[str, int]:
        rows = self.query(f"SELECT application_name, MAX(notification_id) FROM {self.tracking_table} "
                          "GROUP BY application_name")
        return {name: int(position) for name, position in rows}

    def head(self, topic: str | None = None) -> int:
        where = " WHERE topic = ?" if topic else ""
        rows = self.query(f"SELECT COALESCE(MAX({self.notification_id}), 0) FROM {self.events}{where}",
                          (topic,) if topic else ())
        return int(rows[0][0]) if rows else 0

    def inbox_count(self) -> int:
        rows = self.query(f"SELECT COUNT(*) FROM {self.inbox}")
        return int(rows[0][0]) if rows else 0

    def topic_counts(self, like: str) -> dict[str, int]:
        rows = self.query(f"SELECT topic, COUNT(DISTINCT originator_id) FROM {self.events} WHERE topic LIKE ? "
                          "GROUP BY topic", (like,))
        return {topic: int(n) for topic, n in rows}


def end_offsets(bootstrap: str, topics: tuple[str, ...] | list[str]) -> dict[tuple[str, int], int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        ends = consumer.end_offsets([TopicPartition(t, p) for t in topics for p in range(PARTITIONS)])
    finally:
        consumer.close()
    return {(tp.topic, tp.partition): int(offset) for tp, offset in ends.items()}


def consumed_to_end(store: Store, ends: dict[tuple[str, int], int]) -> list[str]:
    """The partitions whose tracked position is behind the broker's end (empty when none)."""
    tracked = store.tracking()
    return [f"{t}:{p} at {tracked.get(f'kafka:{t}:{p}', -1)} of {end - 1}"
            for (t, p), end in sorted(ends.items()) if end > 0 and tracked.get(f"kafka:{t}:{p}", -1) < end - 1]


def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record of a topic, from the start to its end now (assign, seek by offset)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=3000)
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    records: list[Any] = []
    try:
        ends = consumer.end_offsets(partitions)
        wanted = [tp for tp in partitions if ends.get(tp, 0) > 0]
        if not wanted:
            return []
        consumer.assign(wanted)
        for tp in wanted:
            consumer.seek(tp, 0)
        left = {tp: ends[tp] for tp in wanted}
        while left:
            batch = consumer.poll(timeout_ms=2000)
            if not batch:
                break
            for tp, items in batch.items():
                records.extend(items)
                if items and items[-1].offset >= left.get(tp, 0) - 1:
                    left.pop(tp, None)
    finally:
        consumer.close()
    return records


def dead_letters(bootstrap: str, topic: str) -> list[tuple[str, int, int]]:
    """(original topic, partition, offset) of each record in `<topic>.dlq`."""
    out = []
    for record in read_topic(bootstrap, f"{topic}.dlq"):
        headers = {k: v.decode() for k, v in record.headers or []}
        out.append((headers.get("kafka_dlt-original-topic", "?"),
                    int(headers.get("kafka_dlt-original-partition", -1)),
                    int(headers.get("kafka_dlt-original-offset", -1))))
    return out


def event_ids(bootstrap: str, topic: str) -> set[str]:
    ids = set()
    for record in read_topic(bootstrap, topic):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            ids.add(json.loads(record.value)["id"])
    return ids


def sent_message_ids(bootstrap: str) -> list[str]:
    """message_id of every notification.email_sent.v1 published (with the relay's repeats)."""
    out = []
    for record in read_topic(bootstrap, "portal.notification-deliveries"):
        event = json.loads(record.value)
        if event.get("type") == "notification.email_sent.v1":
            out.append(event["data"]["message_id"])
    return out
