"""Dead letters as the contract says (docs/CONTRACT.md): `<topic>.dlq`, original key and
bytes, Spring Kafka's header names."""

from __future__ import annotations

from contracts.events import dlq_topic
from events.envelope import InboundRecord, InvalidRecord

MAX_HEADER_MESSAGE = 4000


DeadLetter = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]


def dead_letter(record: InboundRecord, error: InvalidRecord, group_id: str = "") -> DeadLetter:
    """(topic, key, value, headers) of the dead letter for a record that could not be read."""
    headers = [
        *record.headers,
        ("kafka_dlt-original-topic", record.topic.encode()),
        ("kafka_dlt-original-partition", str(record.partition).encode()),
        ("kafka_dlt-original-offset", str(record.offset).encode()),
        ("kafka_dlt-original-timestamp", str(record.timestamp_ms).encode()),
        # Both services consume some topics: each refused copy says whose it is.
        ("kafka_dlt-original-consumer-group", group_id.encode()),
        ("kafka_dlt-exception-fqcn", error.fqcn.encode()),
        ("kafka_dlt-exception-message", error.message[:MAX_HEADER_MESSAGE].encode("utf-8", "replace")),
    ]
    return dlq_topic(record.topic), record.key, record.value, headers
