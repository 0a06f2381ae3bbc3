"""Structured logs: one JSON object per line, with whatever context the caller binds."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from events.tracing import current_trace_id


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("event_id", "correlation_id", "partner_id", "client_id", "topic", "partition", "offset"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        trace_id = getattr(record, "trace_id", None) or current_trace_id()
        if trace_id is not None:
            entry["trace_id"] = trace_id  # find the trace of a log line, or the lines of a trace
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "kafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
