"""The CloudEvents 1.0 envelope (structured mode, JSON) every event on the bus travels in."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class CloudEvent(BaseModel):
    """The envelope (docs/CONTRACT.md, "Envelope"). Unknown extension attributes are kept, never an error."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=200, description="Unique per event; the deduplication key")
    source: str = Field(min_length=1, max_length=500)
    type: str = Field(min_length=1, max_length=200)
    time: AwareDatetime = Field(description="RFC 3339 with offset")
    subject: str = Field(min_length=1, max_length=200, description="Entity id, also the record key")
    partnerid: str = Field(min_length=1, max_length=200, description="The firm")
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]
    # The CloudEvents distributed-tracing extension (docs/CONTRACT.md, "Tracing"). Not
    # validated beyond being text: a malformed context is ignored, never a dead letter.
    traceparent: str | None = Field(
        default=None, max_length=4096,
        description="W3C Trace Context `traceparent` of the context the event was created in "
        "(`00-<trace-id>-<parent-id>-<flags>`); optional, an invalid one is ignored",
        examples=["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"])
    tracestate: str | None = Field(
        default=None, max_length=4096,
        description="W3C Trace Context `tracestate` that goes with `traceparent`; optional")

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode("utf-8")


def make_event(
    *,
    id: str,
    source: str,
    type: str,
    subject: str,
    partnerid: str,
    data: dict[str, Any],
    time: datetime,
) -> CloudEvent:
    return CloudEvent(
        specversion="1.0",
        id=id,
        source=source,
        type=type,
        time=time,
        subject=subject,
        partnerid=partnerid,
        data=data,
    )
