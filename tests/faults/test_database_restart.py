"""PostgreSQL restarted while the client directory ingests and serves: the service recovers
by itself (no restart), loses nothing, and answers 503 rather than 500 while the store is gone."""

from __future__ import annotations

import random
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.faults.processes import ServiceProcess, wait_until
from tests.faults.test_scale_out import caught_up, snapshot
from tests.faults.workload import produce, workload
from tests.harness import SECRET, auth

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


def restart_postgres() -> None:
    subprocess.run("pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -n1) main restart",
                   shell=True, check=True, capture_output=True, timeout=120)


def test_the_service_rides_out_a_database_restart_under_load(broker, stores, tmp_path: Path) -> None:
    records = workload(6_000, seed=random.randrange(1 << 30))
    partners = sorted({r.partner for r in records})
    store = stores.new("postgresql")
    env = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "CLIENT_DIRECTORY_DB": store,
           "CLIENT_DIRECTORY_GROUP_ID": f"cd-pg-{uuid.uuid4().hex[:6]}", "PORTAL_JWT_SECRET": SECRET}
    service = ServiceProcess("services.client_directory", env, tmp_path / "service.log")
    statuses: list[int] = []
    stop = threading.Event()

    def read_continuously(url: str) -> None:
        headers = auth(f"{partners[0]}-u0", partners[0], "admin")
        while not stop.is_set():
            try:
                statuses.append(httpx.get(f"{url}/v1/clients?tab=all", headers=headers, timeout=10).status_code)
            except httpx.TransportError:
                statuses.append(0)
            time.sleep(0.05)

    try:
        service.start()
        url = f"http://127.0.0.1:{service.port}"
        def ready() -> bool:
            try:
                return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, 60, what="ready")
        reader = threading.Thread(target=read_continuously, args=(url,))
        reader.start()
        sender = threading.Thread(target=produce, args=(broker.bootstrap, records))
        sender.start()
        time.sleep(1.0)
        restart_postgres()
        sender.join()
        ends = produce(broker.bootstrap, [])
        wait_until(lambda: caught_up(store, ends), 240, every=0.5, what="caught up after the restart")
        stop.set()
        reader.join()
        assert service.alive(), "the service died with the database"
        assert httpx.get(f"{url}/readyz").status_code == 200
    finally:
        stop.set()
        service.stop()

    assert 500 not in statuses and 0 not in statuses, sorted(set(statuses))
    assert statuses.count(200) > len(statuses) // 2, "the reads were not served"
    clean = stores.new("postgresql")
    clean_env = {**env, "CLIENT_DIRECTORY_DB": clean, "CLIENT_DIRECTORY_GROUP_ID": f"clean-{uuid.uuid4().hex[:6]}"}
    replay = ServiceProcess("services.client_directory", clean_env, tmp_path / "clean.log")
    try:
        replay.start()
        wait_until(lambda: caught_up(clean, ends), 240, every=0.5, what="clean run")
    finally:
        replay.stop()
    assert snapshot(store, set(partners)) == snapshot(clean, set(partners))
    print(f"\ndatabase restarted under load: {len(records)} events, lost 0, applied twice 0; reads during it: "
          f"{ {s: statuses.count(s) for s in sorted(set(statuses))} }")
