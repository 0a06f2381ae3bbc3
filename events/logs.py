"""Structured logs: one JSON object per line, with whatever context the caller binds.

One format per process, for every logger in it (ours, FastStream's, aiokafka's, uvicorn's):
JSON lines when stderr is not a terminal (files, pipes, collectors: greppable, one event per
line), readable lines when it is. `LOG_FORMAT` (`json`, `text`, `auto`) overrides the choice;
`make run` sets it, since the services' output reaches the terminal through its pipe.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import TextIO

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


class TextFormatter(logging.Formatter):
    """A terminal's line: time, level, logger and message, then the bound context; no colours."""

    CONTEXT = ("event_id", "correlation_id", "partner_id", "client_id", "topic", "partition", "offset", "trace_id")

    def __init__(self, service: str) -> None:
        super().__init__("%(asctime)s %(levelname)-7s " + service + " %(name)s: %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{key}={getattr(record, key)}" for key in self.CONTEXT
                           if getattr(record, key, None) not in (None, ""))
        if not context:
            return line
        head, newline, rest = line.partition("\n")  # the context before a traceback, not after
        return f"{head} [{context}]{newline}{rest}"


def formatter_for(service: str, stream: TextIO, choice: str | None = None) -> logging.Formatter:
    """JSON unless `stream` is a terminal; `choice` (LOG_FORMAT) `json` or `text` decides."""
    choice = (choice or os.environ.get("LOG_FORMAT") or "auto").strip().lower()
    if choice == "auto":
        choice = "text" if stream.isatty() else "json"
    return TextFormatter(service) if choice == "text" else JsonFormatter(service)


# Libraries that install handlers of their own (FastStream: coloured lines on stderr at import;
# uvicorn: its dictConfig when a server is configured): their records go to the root handler.
THIRD_PARTY = ("faststream", "faststream.access", "faststream.access.kafka", "aiokafka", "kafka",
               "uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def _route_to_root(names: tuple[str, ...]) -> None:
    import faststream  # noqa: F401 - its import adds the handler removed below; import it first
    import uvicorn.config

    for name in names:
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # uvicorn.Config applies LOGGING_CONFIG (its default argument, this very dict) when a server
    # is made: keep its levels, never its handlers.
    uvicorn.config.LOGGING_CONFIG.clear()
    uvicorn.config.LOGGING_CONFIG.update({
        "version": 1, "disable_existing_loggers": False,
        "loggers": {name: {"handlers": [], "propagate": True} for name in names if name.startswith("uvicorn")},
    })


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when a record is emitted: a handler holding the stream
    of the moment it was made writes to a closed one once that is swapped (as test runners do)."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always sys.stderr


def configure(service: str, level: str = "INFO") -> None:
    handler = StderrHandler()
    handler.setFormatter(formatter_for(service, sys.stderr))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    _route_to_root(THIRD_PARTY)
    for noisy in ("aiokafka", "kafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
