"""On-call tooling shared by both services' command lines: dead letters, replays, histories.

Everything here goes through the service's own store and inbox, so it is as idempotent as
the live consumer: a replayed event whose id was processed changes nothing, and a dead letter
is re-published once per (DLQ partition, offset), however often redrive runs.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from contracts.events import dlq_topic
from events.config import KafkaSettings
from events.envelope import InboundRecord, InvalidRecord, parse_record
from events.inbox import InboxSink
from events.store import EventStoreApplication

# Piped or redirected, rich would wrap lines at 80 columns: text is never wrapped, and tables
# become tab-separated lines (print_rows).
console = Console(soft_wrap=True)
# Progress goes to stderr, so `--json` output on stdout stays parseable.
progress_console = Console(stderr=True)


def print_rows(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]],
               styles: Sequence[str | None] | None = None) -> None:
    """A table: drawn by rich on a terminal; otherwise plain lines for grep, cut and awk: `# title`,
    the column names, then one line per row, cells separated by tabs, never truncated or
    wrapped (a tab or line break inside a cell is written as a space or `\\n`)."""
    rows = [list(row) for row in rows]
    if not console.is_terminal:
        lines = [f"# {_one_line(title)}", "\t".join(columns)]
        lines += ["\t".join(_one_line(cell) for cell in row) for row in rows]
        print("\n".join(lines), flush=True)
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for index, row in enumerate(rows):
        table.add_row(*row, style=styles[index] if styles else None)
    console.print(table)


def _one_line(cell: str) -> str:
    return str(cell).replace("\t", " ").replace("\r", "").replace("\n", "\\n")


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]

    def header(self, name: str) -> str:
        return self.headers.get(name, b"").decode("utf-8", "replace")


def _consumer(kafka: KafkaSettings) -> KafkaConsumer:
    # kafka-python's assign() consumer: no group, nothing committed, nothing disturbed.
    return KafkaConsumer(**kafka.kafka_python_kwargs(), enable_auto_commit=False, consumer_timeout_ms=2000,
                         client_id="portal-ops")


def read_range(kafka: KafkaSettings, topic: str, partition: int, start: int = 0,
               stop: int | None = None) -> Iterator[Any]:
    """Records of one partition from `start` to `stop` (inclusive) or the current end."""
    consumer = _consumer(kafka)
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        end = consumer.end_offsets([tp])[tp]
        last = end - 1 if stop is None else min(stop, end - 1)
        if start > last:
            return
        consumer.seek(tp, start)
        for record in consumer:
            if record.offset > last:
                break
            yield record
            if record.offset >= last:
                break
    finally:
        consumer.close()


def partitions_of(kafka: KafkaSettings, topic: str) -> list[int]:
    consumer = _consumer(kafka)
    try:
        return sorted(consumer.partitions_for_topic(topic) or [])
    finally:
        consumer.close()


def dead_letters(kafka: KafkaSettings, topic: str) -> list[DeadLetter]:
    letters = []
    for partition in partitions_of(kafka, dlq_topic(topic)):
        for record in read_range(kafka, dlq_topic(topic), partition):
            letters.append(DeadLetter(partition, record.offset, record.key, record.value,
                                      {k: v or b"" for k, v in record.headers}))
    return letters


def redrive_name(topic: str, partition: int) -> str:
    return f"redrive:{dlq_topic(topic)}:{partition}"


def redrive(app: EventStoreApplication, kafka: KafkaSettings, topic: str,
            group_id: str | None = None) -> tuple[int, int]:
    """Re-publish dead letters to their original topic, each once. Returns (sent, skipped).

    With `group_id`, only the letters that consumer group refused: another service reading the
    same topic dead-letters its own copy, and redrives it itself."""
    producer = KafkaProducer(**kafka.kafka_python_kwargs(), acks="all", client_id="portal-ops")
    sent = skipped = 0
    try:
        for partition in partitions_of(kafka, dlq_topic(topic)):
            done = app.tracked(redrive_name(topic, partition))
            for record in read_range(kafka, dlq_topic(topic), partition):
                if done is not None and record.offset <= done:
                    skipped += 1
                    continue
                owner = dict(record.headers).get("kafka_dlt-original-consumer-group")
                if group_id and owner and owner.decode() != group_id:
                    continue
                original = [(k, v) for k, v in record.headers if not k.startswith("kafka_dlt-")]
                original.append(("portal-redriven-from", f"{dlq_topic(topic)}:{partition}:{record.offset}".encode()))
                producer.send(topic, key=record.key, value=record.value, headers=original).get(timeout=30)
                # The position is saved after the broker's ack: a crash in between re-sends
                # that one record, which consumers drop by its CloudEvent id.
                app.record(tracking=Tracking(redrive_name(topic, partition), record.offset))
                sent += 1
    finally:
        producer.close()
    return sent, skipped


@dataclass
class ReplayReport:
    records: int = 0
    applied: int = 0
    duplicates: int = 0
    unreadable: int = 0


def replay(sink: InboxSink, kafka: KafkaSettings, topic: str, partition: int, start: int,
           stop: int | None, batch_size: int = 500) -> ReplayReport:
    """Feed a range of a partition through the service's inbox again.

    The live consumer's position is not moved: events whose ids were processed are dropped,
    the others are applied as if they had just arrived.
    """
    report = ReplayReport()
    batch: list[Any] = []

    def flush() -> None:
        events = []
        for record in batch:
            try:
                events.append(parse_record(record))
            except InvalidRecord as error:
                report.unreadable += 1
                console.print(f"[yellow]unreadable[/] {topic}[{partition}]@{record.offset}: {error}")
        applied = sink.apply_replay(events)
        report.duplicates += applied
        report.applied += len(events) - applied
        batch.clear()

    with Progress(TextColumn(f"replaying {topic}[{partition}]"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console) as progress:
        task = progress.add_task("replay", total=None)
        for record in read_range(kafka, topic, partition, start, stop):
            batch.append(InboundRecord(record.topic, record.partition, record.offset, record.key, record.value,
                                       tuple((k, v or b"") for k, v in record.headers), record.timestamp or 0))
            report.records += 1
            if len(batch) >= batch_size:
                flush()
                progress.update(task, completed=report.records)
        if batch:
            flush()
        progress.update(task, completed=report.records, total=report.records)
    return report


def inbox_history(app: EventStoreApplication, *, subject: str | None = None, partner: str | None = None,
                  limit: int = 1000) -> list[dict[str, Any]]:
    """Inbound events (applied and rejected, with reasons) about a subject, oldest first (the
    last `limit` of them): one index range of the inbox table."""
    return [entry.as_dict() for entry in app.inbox.inbox_entries(partner_id=partner, subject=subject, limit=limit)]


# --- the command line ------------------------------------------------------------------------

def add_commands(commands: Any) -> None:
    """`dlq list|show|redrive --topic T` and `topics replay ...` on a service's CLI."""
    dlq = commands.add_parser(
        "dlq", help="dead letters: what could not be read, and why; redrive after a fix",
        description="Records this service could not read (not JSON, not a CloudEvent, unknown type, invalid "
        "data) are in <topic>.dlq with their original key and bytes, and headers saying where they came from "
        "and why they were refused.")
    dlq_actions = dlq.add_subparsers(dest="action", required=True)
    for action, text, description in (
        ("list", "list the dead letters of a topic", "One line per dead letter: its DLQ partition and offset, "
         "where it came from, its key, the exception and its message."),
        ("show", "print one dead letter in full", "Every header, the key and the original value of one dead "
         "letter (see `dlq list` for its partition and offset)."),
        ("redrive", "re-publish dead letters to their topic, each once", "Re-publishes every dead letter of the "
         "topic to the topic itself, after the producer or this service was fixed. Each DLQ position redriven "
         "is recorded in the service's store: running it again sends nothing twice; events whose ids were "
         "processed change nothing."),
    ):
        sub = dlq_actions.add_parser(action, help=text, description=description)
        sub.add_argument("--topic", required=True, help="the original topic, e.g. platform.partner-clients")
        if action == "show":
            sub.add_argument("--partition", type=int, required=True, help="the DLQ partition")
            sub.add_argument("--offset", type=int, required=True, help="the offset in the DLQ partition")
    topics = commands.add_parser("topics", help="re-consume a range of a Kafka topic",
                                 description="Re-consume records from Kafka into this service's store.")
    topics_actions = topics.add_subparsers(dest="action", required=True)
    replay_parser = topics_actions.add_parser(
        "replay", help="feed a partition's records from an offset through this service again (idempotent)",
        description="Reads the range with its own assign() consumer (no group: the live consumer's position "
        "does not move) and feeds it through the same inbox as the live consumer: an event whose CloudEvent id "
        "was processed changes nothing; one that never arrived is applied as if it had just arrived. "
        "Unreadable records are reported, not dead-lettered again.")
    replay_parser.add_argument("--topic", required=True, help="a topic this service consumes")
    replay_parser.add_argument("--partition", type=int, required=True)
    replay_parser.add_argument("--from-offset", type=int, required=True, help="the first offset (inclusive)")
    replay_parser.add_argument("--to-offset", type=int, default=None, help="the last offset (inclusive); "
                               "default: the partition's end")


def run_command(args: argparse.Namespace, app: EventStoreApplication, sink: InboxSink,
                kafka: KafkaSettings, consumes: Collection[str] | None = None, group_id: str | None = None) -> int:
    """Run a `dlq` or `topics` command; `consumes` (the service's inbound topics) guards replays:
    a topic the service does not consume would only fill its inbox with rejections."""
    if args.command == "topics" and consumes is not None and args.topic not in consumes:
        console.print(f"[red]{args.topic} is not consumed by this service[/]; "
                      f"it consumes: {', '.join(sorted(consumes))}")
        return 2
    if args.command == "dlq":
        if args.action == "list":
            letters = dead_letters(kafka, args.topic)
            print_rows(f"{dlq_topic(args.topic)}: {len(letters)} dead letters",
                       ("partition", "offset", "from", "key", "error", "message"),
                       ([str(letter.partition), str(letter.offset),
                         f"{letter.header('kafka_dlt-original-partition')}@"
                         f"{letter.header('kafka_dlt-original-offset')}",
                         (letter.key or b"").decode("utf-8", "replace"), letter.header("kafka_dlt-exception-fqcn"),
                         # A terminal's table shows the start of the message; a pipe gets all of it.
                         letter.header("kafka_dlt-exception-message")[:120 if console.is_terminal else None]]
                        for letter in letters))
            return 0
        if args.action == "show":
            for letter in dead_letters(kafka, args.topic):
                if letter.partition == args.partition and letter.offset == args.offset:
                    console.print({k: v.decode("utf-8", "replace") for k, v in letter.headers.items()})
                    console.print("key:", (letter.key or b"").decode("utf-8", "replace"))
                    console.print("value:", (letter.value or b"").decode("utf-8", "replace"))
                    return 0
            console.print(f"no dead letter at {dlq_topic(args.topic)}[{args.partition}]@{args.offset}")
            return 1
        sent, skipped = redrive(app, kafka, args.topic, group_id)
        console.print(f"redriven {sent} dead letters to {args.topic}; {skipped} had been redriven before")
        return 0
    if args.command == "topics":
        report = replay(sink, kafka, args.topic, args.partition, args.from_offset, args.to_offset)
        console.print(f"replayed {report.records} records of {args.topic}[{args.partition}]: "
                      f"{report.applied} applied, {report.duplicates} already processed, "
                      f"{report.unreadable} unreadable")
        return 0
    raise ValueError(f"not an ops command: {args.command}")


def print_history(rows: Sequence[dict[str, Any]], title: str) -> None:
    print_rows(title, ("at", "type", "outcome", "reason", "position", "id"),
               ([row["at"], row["type"], row["outcome"], row["reason"], row["position"], row["id"]] for row in rows),
               ["red" if row["outcome"] == "rejected" else None for row in rows])


def as_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(rows), indent=2, ensure_ascii=False)


# --- stored histories --------------------------------------------------------------------------

def aggregate_history(app: EventStoreApplication, aggregate_id: UUID) -> list[dict[str, str]]:
    """Every stored event of one aggregate, oldest first, with its fields."""
    rows = []
    for stored in app.recorder.select_events(aggregate_id):
        domain_event: Any = app.mapper.to_domain_event(stored)
        fields = {k: v for k, v in domain_event.__dict__.items()
                  if k not in ("originator_id", "originator_version", "timestamp", "originator_topic")}
        rows.append({"version": str(domain_event.originator_version),
                     "at": domain_event.timestamp.isoformat(timespec="seconds"),
                     "event": type(domain_event).__qualname__,
                     "fields": json.dumps(fields, ensure_ascii=False, default=_plain)})
    return rows


def _plain(value: Any) -> str:
    """Datetimes (and anything else JSON has no type for) as readable text."""
    return value.isoformat() if isinstance(value, datetime) else str(value)


def print_aggregate(rows: Sequence[dict[str, str]], title: str) -> None:
    print_rows(title, ("version", "at", "event", "fields"),
               ([row["version"], row["at"], row["event"], row["fields"]] for row in rows))


def scan(app: EventStoreApplication, topics: Sequence[str], *, containing: str | None = None,
         what: str = "reading the event store") -> Iterator[Any]:
    """The decoded events of these topics, oldest first, over the whole notification log, with
    a progress bar (on stderr). `containing` skips, without decoding, the events whose stored
    state does not hold that text: a cheap filter for an id on a large store."""
    # Stored state is JSON: an ASCII id without quotes or backslashes appears in it verbatim.
    plain = containing is not None and containing.isascii() and '"' not in containing and "\\" not in containing
    needle = containing.encode() if containing is not None and plain else None
    head = app.recorder.max_notification_id() or 0
    with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=progress_console, transient=True) as progress:
        task = progress.add_task(what, total=head)
        start = 0
        while True:
            page = app.recorder.select_notifications(start=start, limit=5000, topics=topics, inclusive_of_start=False)
            if not page:
                break
            for notification in page:
                if needle is None or needle in notification.state:
                    yield app.mapper.to_domain_event(notification)
            start = page[-1].id
            progress.update(task, completed=start)
        progress.update(task, completed=head)
