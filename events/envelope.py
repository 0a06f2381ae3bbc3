"""Reading a Kafka record as a CloudEvent of a known type, or saying exactly why not."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from contracts.envelope import CloudEvent
from contracts.events import EVENT_TYPES, EventData

MAX_RECORD_BYTES = 1_000_000


@dataclass(frozen=True)
class InboundRecord:
    """A Kafka record as it was delivered; what a dead letter carries back."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int = 0


@dataclass(frozen=True)
class InboundEvent:
    record: InboundRecord
    envelope: CloudEvent
    data: EventData
    # The consumer's span for this event while tracing (events.tracing), its handler's parent.
    span: Any = field(default=None, compare=False, repr=False)

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def type(self) -> str:
        return self.envelope.type

    @property
    def partner_id(self) -> str:
        return self.envelope.partnerid


@dataclass
class InvalidRecord(Exception):
    """Why a record cannot be read; `fqcn` names the failure for the dead-letter header."""

    message: str
    fqcn: str = field(default="events.envelope.InvalidRecord")

    def __str__(self) -> str:
        return self.message


def parse_record(record: InboundRecord) -> InboundEvent:
    """Parse and validate one record against the envelope and its type's data model.

    Raises InvalidRecord for anything that is not JSON, not a CloudEvent, of an unknown type,
    whose data fails validation, or whose subject disagrees with the data.
    """
    value = record.value
    if value is None:
        raise InvalidRecord("the record has no value (tombstone)", "events.envelope.EmptyRecord")
    if len(value) > MAX_RECORD_BYTES:
        raise InvalidRecord(
            f"the record is {len(value)} bytes, over the {MAX_RECORD_BYTES} bytes limit",
            "events.envelope.RecordTooLarge",
        )
    try:
        # The usual case, parsed and validated in one pass by pydantic-core (a third of the
        # cost of json.loads + model_validate). Anything it refuses is read again below, only
        # to say precisely why.
        envelope = CloudEvent.model_validate_json(value)
    except ValidationError:
        envelope = _envelope_or_why_not(value)
    return _with_data(record, envelope)


def _envelope_or_why_not(value: bytes) -> CloudEvent:
    try:
        # The contract says UTF-8: json.loads(bytes) would also guess UTF-16/32.
        raw: Any = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        fqcn = f"{type(error).__module__}.{type(error).__qualname__}"
        raise InvalidRecord(f"not valid UTF-8 JSON: {error}", fqcn) from None
    except RecursionError:  # nesting deeper than the interpreter's stack: no CloudEvent is
        raise InvalidRecord("not a CloudEvent: JSON nested too deeply", "events.envelope.TooDeep") from None
    if not isinstance(raw, dict):
        raise InvalidRecord("not a CloudEvent: the JSON value is not an object",
                            "events.envelope.NotACloudEvent")
    try:
        return CloudEvent.model_validate(raw)
    except ValidationError as error:
        raise InvalidRecord(
            f"not a CloudEvent 1.0: {_summary(error)}", "pydantic_core.ValidationError"
        ) from None


def _with_data(record: InboundRecord, envelope: CloudEvent) -> InboundEvent:
    event_type = EVENT_TYPES.get(envelope.type)
    if event_type is None:
        raise InvalidRecord(f"unknown event type {envelope.type!r}", "events.envelope.UnknownEventType")
    try:
        data = event_type.data.model_validate(envelope.data)
    except ValidationError as error:
        raise InvalidRecord(
            f"{envelope.type} data is invalid: {_summary(error)}", "pydantic_core.ValidationError"
        ) from None
    subject = getattr(data, event_type.subject_field)
    if subject != envelope.subject:
        raise InvalidRecord(
            f"subject {envelope.subject!r} differs from data.{event_type.subject_field} {subject!r}",
            "events.envelope.SubjectMismatch",
        )
    return InboundEvent(record=record, envelope=envelope, data=data)


def _summary(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        location = ".".join(str(p) for p in item["loc"]) or "(root)"
        parts.append(f"{location}: {item['msg']}")
    more = error.error_count() - 5
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)
