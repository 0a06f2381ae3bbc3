"""SIGKILL the client directory at random points of a 20,000-event ingest, restarting it each
time: nothing is lost, nothing is applied twice, and the read model equals a clean run's."""

from __future__ import annotations

import random
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from tests.faults.processes import ServiceProcess, tracked_offsets, wait_until
from tests.faults.workload import produce, workload

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

EVENTS = 20_000
KILLS = 5


def caught_up(db: Path, ends: dict[tuple[str, int], int]) -> bool:
    tracked = tracked_offsets(db)
    if any(tracked.get(f"kafka:{t}:{p}", -1) < end - 1 for (t, p), end in ends.items() if end > 0):
        return False
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        head = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM stored_events").fetchone()[0]
    return tracked.get("projection:clients", -1) >= head


def applied(db: Path) -> int:
    return sum(v for k, v in tracked_offsets(db).items() if k.startswith("kafka:"))


def snapshot(db: Path, partners: set[str]) -> dict[str, object]:
    marks = ",".join("?" for _ in partners)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        tables: dict[str, object] = {
            table: sorted(conn.execute(f"SELECT * FROM {table} WHERE partner_id IN ({marks})", sorted(partners)))
            for table in ("cd_clients", "cd_assignments", "cd_members", "cd_preferences")
        }
        tables["stored_events"] = conn.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0]
        tables["aggregate_versions"] = sorted(conn.execute(
            "SELECT originator_id, MAX(originator_version) FROM stored_events GROUP BY originator_id"))
    return tables


def run(bootstrap: str, db: Path, log: Path, ends: dict[tuple[str, int], int], kills: int,
        rng: random.Random) -> ServiceProcess:
    service = ServiceProcess("services.client_directory", {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "CLIENT_DIRECTORY_DB": f"sqlite:///{db}",
        "CLIENT_DIRECTORY_GROUP_ID": f"cd-{uuid.uuid4().hex[:8]}",
        # Fetches (one transaction each) small enough for five kills to land mid-ingest.
        "KAFKA_MAX_POLL_RECORDS": "500",
    }, log)
    try:
        while service.kills < kills:
            service.start()
            before = applied(db)
            # Kill only while ingesting: after some progress, at a random moment.
            wait_until(lambda before=before: applied(db) > before or caught_up(db, ends), 60,  # type: ignore[misc]
                       what="ingest progress")
            if caught_up(db, ends):
                break
            time.sleep(rng.uniform(0.0, 0.8))
            service.kill()
        if not service.alive():
            service.start()
        wait_until(lambda: caught_up(db, ends), 300, every=0.5, what="ingest complete")
    finally:
        service.stop()
    return service


def test_sigkill_during_ingest_loses_nothing_applies_nothing_twice(broker, tmp_path: Path) -> None:
    records = workload(EVENTS, seed=random.randrange(1 << 30))
    partners = {r.partner for r in records}
    started = time.monotonic()
    ends = produce(broker.bootstrap, records)
    ends = {k: v for k, v in ends.items()}

    clean_db = tmp_path / "clean.db"
    t0 = time.monotonic()
    run(broker.bootstrap, clean_db, tmp_path / "clean.log", ends, kills=0, rng=random.Random(1))
    clean_seconds = time.monotonic() - t0

    killed_db = tmp_path / "killed.db"
    rng = random.Random()
    service = run(broker.bootstrap, killed_db, tmp_path / "killed.log", ends, kills=KILLS, rng=rng)
    assert service.kills == KILLS, f"the ingest finished before {KILLS} kills ({service.kills})"

    clean, killed = snapshot(clean_db, partners), snapshot(killed_db, partners)
    assert killed["stored_events"] == clean["stored_events"], "an event was lost or applied twice"
    assert killed["aggregate_versions"] == clean["aggregate_versions"]
    for table in ("cd_clients", "cd_assignments", "cd_members", "cd_preferences"):
        assert killed[table] == clean[table], table
    with sqlite3.connect(killed_db) as conn:
        inbox = conn.execute("SELECT COUNT(*) FROM stored_inbox").fetchone()[0]
    assert inbox >= len(records)
    print(f"\ningest of {len(records)} events: clean run {clean_seconds:.1f}s; {service.kills} kills, "
          f"{service.starts} starts; lost 0, applied twice 0; total {time.monotonic() - started:.1f}s")
