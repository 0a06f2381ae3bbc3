"""The committed JSON Schemas and AsyncAPI document are what the models say today."""

from __future__ import annotations

import json

from contracts.events import EVENT_TYPES, Topic
from contracts.export import SCHEMAS, exports


def test_committed_exports_are_up_to_date_run_make_contracts_if_not() -> None:
    stale = [
        path.name for path, text in exports().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    extra = {p.name for p in SCHEMAS.glob("*.json")} - {p.name for p in exports()}
    assert not stale and not extra, f"stale: {stale}, not exported any more: {sorted(extra)}; run `make contracts`"


def test_every_contract_type_has_a_schema_and_a_channel() -> None:
    asyncapi = json.loads((SCHEMAS.parent / "asyncapi.json").read_text())
    for type_name, event_type in EVENT_TYPES.items():
        schema = json.loads((SCHEMAS / f"{type_name}.json").read_text())
        assert schema["properties"]["type"]["const"] == type_name
        assert set(schema["required"]) >= {"specversion", "id", "source", "type", "time", "subject", "partnerid",
                                           "data"}
        channel = asyncapi["channels"][event_type.topic.value]
        assert type_name.replace(".", "_") in channel["messages"]
    for topic in Topic:
        assert f"{topic.value}.dlq" in asyncapi["channels"]


def test_the_design_contract_types_are_all_there() -> None:
    design = {
        "partner.member.added.v1", "partner.member.role_changed.v1", "partner.member.removed.v1",
        "client.partner_invited.v1", "client.onboarding_started.v1", "client.verification_completed.v1",
        "client.verification_failed.v1", "client.disconnected.v1", "client.renamed.v1",
        "client.accountant_assigned.v1", "client.accountant_unassigned.v1", "client.metrics_updated.v1",
        "notification.preference_set.v1", "notification.reminder_requested.v1",
        "client.invitation_accepted.v1", "client.invitation_declined.v1",
    }
    assert design <= set(EVENT_TYPES)
