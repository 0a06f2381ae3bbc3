"""Writes the JSON Schemas of every event type and an AsyncAPI 3.0 document into contracts/.

`make contracts` runs it; tests fail when the committed files differ from what it writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from contracts.api import ClientDetails, ClientPage, Problem, ReminderRequest
from contracts.envelope import CloudEvent
from contracts.events import EVENT_TYPES, Topic, dlq_topic

HERE = Path(__file__).parent
SCHEMAS = HERE / "schemas"


def event_schema(type_name: str) -> dict[str, Any]:
    """The envelope's schema with `type` fixed and `data` the type's data schema."""
    et = EVENT_TYPES[type_name]
    envelope = CloudEvent.model_json_schema()
    data = et.data.model_json_schema()
    defs = {**envelope.pop("$defs", {}), **data.pop("$defs", {})}
    envelope["title"] = type_name
    envelope["description"] = et.description
    envelope["properties"]["type"] = {"const": type_name, "type": "string"}
    envelope["properties"]["data"] = data
    envelope["properties"]["subject"]["description"] = f"The {et.subject_field}; also the record key"
    if defs:
        envelope["$defs"] = defs
    envelope["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return envelope


def asyncapi() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic in Topic:
        members = [t for t, et in EVENT_TYPES.items() if et.topic == topic]
        if topic == Topic.CLIENT_DIRECTORY:
            members += ["client.accountant_assigned.v1", "client.accountant_unassigned.v1"]
        channels[topic.value] = {
            "address": topic.value,
            "messages": {
                m.replace(".", "_"): {"$ref": f"#/components/messages/{m.replace('.', '_')}"}
                for m in members
            },
            "bindings": {"kafka": {"bindingVersion": "0.5.0"}},
        }
        channels[dlq_topic(topic.value)] = {
            "address": dlq_topic(topic.value),
            "description": "Records of the topic its consumer could not read, original key and "
            "bytes, with Spring Kafka's kafka_dlt-* headers",
        }
    for type_name, et in EVENT_TYPES.items():
        messages[type_name.replace(".", "_")] = {
            "name": type_name,
            "title": type_name,
            "summary": et.description,
            "contentType": "application/cloudevents+json",
            "payload": {"$ref": f"schemas/{type_name}.json"},
            "bindings": {"kafka": {"key": {"type": "string", "description": et.subject_field}}},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Partner portal events",
            "version": "1.0.0",
            "description": "Public contract v1 of the partner portal back end (docs/CONTRACT.md).",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "components": {"messages": messages},
    }


def exports() -> dict[Path, str]:
    out: dict[Path, str] = {}
    for type_name in EVENT_TYPES:
        out[SCHEMAS / f"{type_name}.json"] = _dump(event_schema(type_name))
    out[SCHEMAS / "cloudevent.json"] = _dump(CloudEvent.model_json_schema())
    for model in (ClientPage, ClientDetails, ReminderRequest, Problem):
        out[SCHEMAS / f"api.{model.__name__}.json"] = _dump(model.model_json_schema())
    out[HERE / "asyncapi.json"] = _dump(asyncapi())
    return out


def _dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    SCHEMAS.mkdir(exist_ok=True)
    written = exports()
    for stale in set(SCHEMAS.glob("*.json")) - set(written):
        stale.unlink()
    for path, text in written.items():
        path.write_text(text, encoding="utf-8")
    print(f"contracts: wrote {len(written)} files into {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
