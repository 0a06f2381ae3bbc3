"""Two instances of the client directory in one consumer group on one PostgreSQL store; one is
killed mid-stream: the other takes over its partitions, nothing is lost or applied twice."""

from __future__ import annotations

import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.faults.processes import ServiceProcess, wait_until
from tests.faults.workload import produce, workload

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


def pg(url: str, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        try:
            return list(conn.execute(sql, params).fetchall())
        except psycopg.errors.UndefinedTable:
            return []


def caught_up(url: str, ends: dict[tuple[str, int], int]) -> bool:
    tracked = dict(pg(url, "SELECT application_name, notification_id FROM client_directory_tracking"))
    if any(tracked.get(f"kafka:{t}:{p}", -1) < end - 1 for (t, p), end in ends.items() if end > 0):
        return False
    head = pg(url, "SELECT COALESCE(MAX(notification_id), 0) FROM client_directory_events")[0][0]
    return tracked.get("projection:clients", -1) >= head


def snapshot(url: str, partners: set[str]) -> dict[str, Any]:
    ids = sorted(partners)
    out: dict[str, Any] = {
        table: sorted(pg(url, f"SELECT * FROM {table} WHERE partner_id = ANY(%s)", (ids,)))
        for table in ("cd_clients", "cd_assignments", "cd_members")
    }
    # The per-tab counts are kept by diffs, so two instances applying one batch twice would show here.
    out["counts"] = sorted(pg(url, "SELECT * FROM cd_counts WHERE partner_id = ANY(%s) AND n <> 0", (ids,)))
    out["versions"] = sorted(pg(url, "SELECT originator_id, MAX(originator_version) FROM client_directory_events "
                                     "GROUP BY originator_id"))
    return out


def test_the_survivor_takes_over_and_nothing_is_lost_or_applied_twice(broker, stores, tmp_path: Path) -> None:
    records = workload(8_000, seed=random.randrange(1 << 30))
    first_half, second_half = records[: len(records) // 2], records[len(records) // 2:]
    partners = {r.partner for r in records}
    group = f"cd-scale-{uuid.uuid4().hex[:6]}"
    shared = stores.new("postgresql")
    env = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "CLIENT_DIRECTORY_DB": shared,
           "CLIENT_DIRECTORY_GROUP_ID": group}
    a = ServiceProcess("services.client_directory", env, tmp_path / "a.log")
    b = ServiceProcess("services.client_directory", env, tmp_path / "b.log")
    try:
        a.start()
        b.start()
        time.sleep(6)  # both join the group and share the partitions
        produce(broker.bootstrap, first_half)
        # Mid-stream: the second half goes out while one instance is killed.
        sender = threading.Thread(target=produce, args=(broker.bootstrap, second_half))
        sender.start()
        time.sleep(random.uniform(0.2, 1.5))
        b.kill()
        sender.join()
        ends = produce(broker.bootstrap, [])
        wait_until(lambda: caught_up(shared, ends), 240, every=0.5, what="the survivor caught up")
        assert a.alive()
        # Both projected the same log at once: quietly (a position recorded by the other is no error).
        for log in (tmp_path / "a.log", tmp_path / "b.log"):
            assert "follower failed" not in log.read_text(), log.read_text()[-3000:]
    finally:
        a.stop()
        b.stop()

    clean = stores.new("postgresql")
    c = ServiceProcess("services.client_directory", {**env, "CLIENT_DIRECTORY_DB": clean,
                                                      "CLIENT_DIRECTORY_GROUP_ID": f"{group}-clean"},
                       tmp_path / "c.log")
    try:
        c.start()
        wait_until(lambda: caught_up(clean, ends), 240, every=0.5, what="the clean run caught up")
    finally:
        c.stop()
    shared_state, clean_state = snapshot(shared, partners), snapshot(clean, partners)
    for key in clean_state:
        assert shared_state[key] == clean_state[key], key
    print(f"\n{len(records)} events, 2 instances, 1 killed mid-stream: lost 0, applied twice 0")
