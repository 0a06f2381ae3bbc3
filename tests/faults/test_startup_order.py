"""A service started before its database and its broker are up waits for them with backoff,
answers liveness at once and readiness 'not ready' with the reason, logs one line per
attempt, then serves."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from deploy.localbroker import free_port, start_broker
from tests.faults.processes import ServiceProcess, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


def attempts(log: Path, text: str) -> int:
    count = 0
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        count += text in entry.get("msg", "")
    return count


# service -> (its store variable, a path that needs the store)
SERVICES = {"client_directory": ("CLIENT_DIRECTORY_DB", "/v1/clients"),
            "notifier": ("NOTIFIER_DB", "/unsubscribe/some-token")}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_a_service_waits_for_its_database_and_broker_then_serves(name: str, postgres: str, tmp_path: Path) -> None:
    store_variable, needs_store = SERVICES[name]
    database = f"t_late_{uuid.uuid4().hex[:8]}"
    store = f"{postgres.rsplit('/', 1)[0]}/{database}"
    kafka_port = free_port()
    log = tmp_path / "service.log"
    # The notifier's SMTP server is not needed to be ready (nothing is due on a new store).
    service = ServiceProcess(f"services.{name}", {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}", store_variable: store}, log)
    broker = None
    url = f"http://127.0.0.1:{service.port}"
    try:
        service.start()

        def answers() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(answers, 30, what="liveness")
        assert httpx.get(f"{url}/readyz").status_code == 503
        wait_until(lambda: database in httpx.get(f"{url}/readyz").json()["store"], 30, what="the reason")
        assert httpx.get(f"{url}{needs_store}").status_code == 503
        wait_until(lambda: attempts(log, "store not ready") >= 3, 30, what="three store attempts")

        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        wait_until(lambda: attempts(log, "Kafka not reachable") >= 2, 60, what="two broker attempts")
        assert httpx.get(f"{url}/readyz").status_code == 503

        broker = start_broker(port=kafka_port)
        wait_until(lambda: httpx.get(f"{url}/readyz").status_code == 200, 90, what="ready")
        store_attempts, broker_attempts = attempts(log, "store not ready"), attempts(log, "Kafka not reachable")
        assert service.alive()
        print(f"\nready after {store_attempts} store and {broker_attempts} broker attempts")
    finally:
        service.stop()
        if broker:
            broker.stop()
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

