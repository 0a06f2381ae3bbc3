"""Envelope parsing is total: whatever bytes a producer writes, `parse_record` gives an event
or an InvalidRecord saying why (what the dead-letter headers carry), never another error.
Short here; `make fuzz` runs the same properties with many more examples."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.envelope import InboundEvent, InboundRecord, InvalidRecord, parse_record

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID: dict[str, Any] = {
    "specversion": "1.0", "id": "e-1", "source": "platform", "type": "client.metrics_updated.v1",
    "time": "2026-12-03T10:00:00+01:00", "subject": "c-1", "partnerid": "p-1",
    "datacontenttype": "application/json",
    "data": {"client_id": "c-1", "wallet_balance": {"amount": "12.50", "currency": "DKK"},
             "missing_receipts": 3, "ready_to_export": 1, "as_of": "2026-12-03T09:00:00Z"},
}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


def outcome(value: bytes) -> InboundEvent | InvalidRecord:
    try:
        return parse_record(InboundRecord("platform.client-metrics", 0, 0, b"c-1", value))
    except InvalidRecord as why:
        assert why.message and why.fqcn
        return why


@FUZZ
@given(st.binary(max_size=2000))
def test_any_bytes_are_an_event_or_a_reason(value: bytes) -> None:
    outcome(value)


@FUZZ
@given(json_values)
def test_any_json_value_is_an_event_or_a_reason(value: Any) -> None:
    outcome(json.dumps(value).encode())


@FUZZ
@given(st.sampled_from(sorted(VALID)), json_values)
def test_a_valid_event_with_any_attribute_replaced_is_an_event_or_a_reason(name: str, value: Any) -> None:
    outcome(json.dumps({**VALID, name: value}).encode())


@FUZZ
@given(st.sampled_from(sorted(VALID["data"])), json_values)
def test_a_valid_event_with_any_data_field_replaced_is_an_event_or_a_reason(name: str, value: Any) -> None:
    outcome(json.dumps({**VALID, "data": {**VALID["data"], name: value}}).encode())


@FUZZ
@given(st.integers(min_value=1, max_value=200_000), st.sampled_from(["[", '{"a":']))
def test_json_nested_to_any_depth_is_a_reason(depth: int, opener: str) -> None:
    result = outcome((opener * depth).encode())
    assert isinstance(result, InvalidRecord)


def test_json_nested_past_the_interpreters_stack_is_refused_as_too_deep() -> None:
    nested = json.dumps({**VALID, "data": None}).replace("null", "[" * 100_000 + "]" * 100_000)
    result = outcome(nested.encode())
    assert isinstance(result, InvalidRecord)
    assert result.fqcn == "events.envelope.TooDeep"


def test_the_valid_event_the_properties_start_from_is_read() -> None:
    assert isinstance(outcome(json.dumps(VALID).encode()), InboundEvent)
