"""Reading records: every way a record can be unreadable is named, and goes to the DLQ as is."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contracts.events import ClientMetricsUpdated, MemberAdded
from events.dlq import dead_letter
from events.envelope import InboundRecord, InvalidRecord, parse_record


def record(value: bytes | None, key: bytes | None = b"c1") -> InboundRecord:
    return InboundRecord(topic="platform.partner-clients", partition=2, offset=41, key=key, value=value,
                         headers=(("trace", b"abc"),), timestamp_ms=1_700_000_000_000)


def event(**overrides: Any) -> bytes:
    body: dict[str, Any] = {
        "specversion": "1.0", "id": "e-1", "source": "/platform", "type": "partner.member.added.v1",
        "time": "2026-11-28T10:00:00+01:00", "subject": "u1", "partnerid": "firm-1",
        "datacontenttype": "application/json",
        "data": {"user_id": "u1", "email": "ada@firm.test", "name": "Ada", "role": "admin", "locale": "fr"},
    }
    body.update(overrides)
    return json.dumps(body).encode()


def test_a_valid_event_is_read_with_its_typed_data() -> None:
    parsed = parse_record(record(event()))
    assert parsed.id == "e-1" and parsed.partner_id == "firm-1"
    assert isinstance(parsed.data, MemberAdded) and parsed.data.locale == "fr"


def test_unknown_attributes_and_data_fields_are_ignored() -> None:
    # traceparent is a known extension now (tracing), kept even when it is not a valid one.
    parsed = parse_record(record(event(comexampleext="x", traceparent="00-abc", data={
        "user_id": "u1", "email": "ada@firm.test", "name": "Ada", "role": "admin", "locale": "fr", "extra": 1})))
    assert parsed.envelope.model_extra == {"comexampleext": "x"}
    assert parsed.envelope.traceparent == "00-abc"


def test_metrics_keep_decimal_strings() -> None:
    parsed = parse_record(record(event(type="client.metrics_updated.v1", subject="c1", data={
        "client_id": "c1", "wallet_balance": {"amount": "-12.50", "currency": "EUR"}, "missing_receipts": 0,
        "ready_to_export": 2, "as_of": "2026-11-28T09:00:00Z"})))
    assert isinstance(parsed.data, ClientMetricsUpdated) and str(parsed.data.wallet_balance.decimal) == "-12.50"


@pytest.mark.parametrize(
    ("value", "reason", "fqcn"),
    [
        (b"\xff\xfe", "not valid UTF-8 JSON", "UnicodeDecodeError"),
        (b'{"specversion": "1.0", "id"', "not valid UTF-8 JSON", "JSONDecodeError"),
        (b"[1, 2]", "not a CloudEvent", "NotACloudEvent"),
        (event(specversion="0.3"), "not a CloudEvent 1.0", "ValidationError"),
        (event(id=""), "id", "ValidationError"),
        (event(time="yesterday"), "time", "ValidationError"),
        (event(time="2026-11-28T10:00:00"), "time", "ValidationError"),
        (event(type="partner.member.added.v9"), "unknown event type", "UnknownEventType"),
        (event(data={"user_id": "u1"}), "data is invalid", "ValidationError"),
        (event(data={"user_id": "u1", "email": "x@y.z", "name": "A", "role": "owner"}), "role", "ValidationError"),
        (event(subject="u2"), "subject", "SubjectMismatch"),
        (None, "no value", "EmptyRecord"),
        (b"{" + b" " * 1_000_001 + b"}", "over the", "RecordTooLarge"),
    ],
)
def test_an_unreadable_record_says_why(value: bytes | None, reason: str, fqcn: str) -> None:
    with pytest.raises(InvalidRecord) as caught:
        parse_record(record(value))
    assert reason in caught.value.message
    assert caught.value.fqcn.endswith(fqcn)


def test_a_dead_letter_keeps_key_bytes_and_headers_and_adds_spring_kafka_headers() -> None:
    original = record(b"not json")
    topic, key, value, headers = dead_letter(original, InvalidRecord("not valid UTF-8 JSON: x", "json.JSONDecodeError"),
                                             "client-directory")
    assert topic == "platform.partner-clients.dlq"
    assert key == b"c1" and value == b"not json"
    named = dict(headers)
    assert named["trace"] == b"abc"
    assert named["kafka_dlt-original-topic"] == b"platform.partner-clients"
    assert named["kafka_dlt-original-partition"] == b"2"
    assert named["kafka_dlt-original-offset"] == b"41"
    assert named["kafka_dlt-exception-fqcn"] == b"json.JSONDecodeError"
    assert named["kafka_dlt-original-consumer-group"] == b"client-directory"
    assert named["kafka_dlt-exception-message"].startswith(b"not valid UTF-8 JSON")
