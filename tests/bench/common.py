"""What every benchmark shares: the results table, sizes, stores, the broker, subprocess
services and their peak memory.

Figures are never asserted: each is printed next to the limit it is compared with, both
measured in the same run on the same machine, so a noisy machine moves both.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from deploy.localbroker import LocalBroker, free_port, start_broker, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
PG_DSN = os.environ.get("BENCH_POSTGRES_DSN",
                        os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"))
SECRET = "bench-secret-that-is-long-enough-for-hs256"


@dataclass(frozen=True)
class Sizes:
    """How much each benchmark does; `full` is what `make bench` runs, `smoke` what the test runs.

    PostgreSQL runs smaller: every read-model statement is a round trip there (about 1 ms
    each on this machine), which makes its projection some ten times slower than SQLite's
    and a full-size run longer than the whole budget. The table says which size each ran at.
    """

    ingest_events: int
    ingest_events_pg: int
    query_clients: int  # in all firms; the rebuild replays their events (about two per client)
    query_firm_clients: int  # in the largest firm
    query_clients_pg: int
    query_firm_clients_pg: int
    query_requests: int  # per tab with one caller (httpx; wrk measures for query_concurrent_seconds)
    query_concurrent_seconds: float
    freshness_seconds: float
    freshness_rate: int
    digest_recipients: int
    append_events: int

    @classmethod
    def full(cls) -> Sizes:
        # PostgreSQL at the sizes the issue names too (it was 20,000 / 25,000 to save time: the
        # rebuild's start-up then weighed a third of the command, and 4 fetches made the ingest).
        return cls(ingest_events=100_000, ingest_events_pg=100_000, query_clients=500_000, query_firm_clients=50_000,
                   query_clients_pg=500_000, query_firm_clients_pg=50_000, query_requests=200,
                   query_concurrent_seconds=5.0, freshness_seconds=20.0, freshness_rate=1000,
                   digest_recipients=10_000, append_events=50_000)

    @classmethod
    def smoke(cls) -> Sizes:
        return cls(ingest_events=300, ingest_events_pg=200, query_clients=300, query_firm_clients=100,
                   query_clients_pg=200, query_firm_clients_pg=50, query_requests=5,
                   query_concurrent_seconds=0.5, freshness_seconds=1.5, freshness_rate=100,
                   digest_recipients=20, append_events=1000)

    def ingest(self, kind: str) -> int:
        return self.ingest_events if kind == "sqlite" else self.ingest_events_pg

    def clients(self, kind: str) -> tuple[int, int]:
        if kind == "sqlite":
            return self.query_clients, self.query_firm_clients
        return self.query_clients_pg, self.query_firm_clients_pg


@dataclass
class Row:
    """One figure beside its limit. `target` is the ratio (or bound) the issue asks for."""

    section: str
    figure: str
    value: float
    unit: str
    limit_name: str = ""
    limit: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.limit is None or not self.limit:
            return None
        return self.value / self.limit


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        limit = f"  (limit: {row.limit_name} {fmt(row.limit)})" if row.limit is not None else ""
        verdict = f"  [{row.target}: {'met' if row.met else 'NOT met'}]" if row.met is not None else ""
        print(f"  {row.section}: {row.figure} = {fmt(row.value)} {row.unit}{limit}{verdict}", flush=True)
        return row

    def table(self) -> str:
        head = ("| bench | figure | value | limit (same run) | ratio | target | met? |\n"
                "|---|---|---:|---|---:|---|:---:|")
        lines = [head]
        for r in self.rows:
            limit = f"{r.limit_name} {fmt(r.limit)}" if r.limit is not None else ""
            ratio = f"{r.ratio:.0%}" if r.ratio is not None else ""
            met = "" if r.met is None else ("yes" if r.met else "**no**")
            lines.append(f"| {r.section} | {r.figure} | {fmt(r.value)} {r.unit} | {limit} | {ratio} | "
                         f"{r.target} | {met} |")
        return "\n".join(lines)


def fmt(value: float | None) -> str:
    if value is None:
        return ""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


# --- stores -----------------------------------------------------------------------------------


class Stores:
    """Fresh stores: a SQLite file under `folder`, or a new PostgreSQL database (dropped at close)."""

    def __init__(self, folder: Path, pg_dsn: str | None) -> None:
        self.folder = folder
        self.pg_dsn = pg_dsn
        self.databases: list[str] = []

    def new(self, kind: str, name: str) -> str:
        unique = f"b_{name}_{uuid.uuid4().hex[:6]}"
        if kind == "sqlite":
            return f"sqlite:///{self.folder / (unique + '.db')}"
        assert self.pg_dsn is not None
        with psycopg.connect(self.pg_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{unique}"')
        self.databases.append(unique)
        return f"{self.pg_dsn.rsplit('/', 1)[0]}/{unique}"

    def close(self) -> None:
        if not self.databases or self.pg_dsn is None:
            return
        with psycopg.connect(self.pg_dsn, autocommit=True) as conn:
            for name in self.databases:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_available(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@contextlib.contextmanager
def broker(folder: Path) -> Iterator[LocalBroker]:
    running = start_broker(log=folder / "tansu.log")
    try:
        yield running
    finally:
        running.stop()


# --- services as subprocesses -----------------------------------------------------------------


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM: the peak resident set of a live process, in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Service:
    """A service run as `python -m services.<name>` in its own process, as in production."""

    def __init__(self, module: str, env: dict[str, str], log: Path, *, port: int | None = None,
                 args: Sequence[str] = ()) -> None:
        self.module = module
        self.log = log
        self.port = port
        self.peak_mb = 0.0
        out = open(log, "ab")  # noqa: SIM115 - the process owns it for its life
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PORTAL_JWT_SECRET": SECRET, **env},
        )
        out.close()
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _sample(self) -> None:
        # VmHWM is the kernel's own high-water mark; sampling only keeps the last value seen
        # before the process exits.
        while self._sampling and self.process.poll() is None:
            peak = peak_rss_mb(self.process.pid)
            if peak is not None:
                self.peak_mb = max(self.peak_mb, peak)
            time.sleep(0.2)

    def wait_for_port(self, timeout: float = 60.0) -> None:
        assert self.port is not None
        wait_for_port(self.port, timeout=timeout, process=self.process)

    def wait_until(self, path: str, headers: dict[str, str] | None = None, timeout: float = 120.0) -> None:
        """Until `path` answers 200: the port opens before the service is built (503 meanwhile)."""
        self.wait_for_port(timeout)
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.module} exited with {self.process.returncode}; see {self.log}")
                try:
                    if client.get(path, headers=headers).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.module} did not answer 200 on {path} within {timeout}s")
                time.sleep(0.1)

    def stop(self) -> float:
        """Stop the process; returns its peak RSS in MB."""
        peak = peak_rss_mb(self.process.pid)
        if peak is not None:
            self.peak_mb = max(self.peak_mb, peak)
        self._sampling = False
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.peak_mb


def directory_env(bootstrap: str, store_url: str, port: int, group_id: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "CLIENT_DIRECTORY_DB": store_url,
        "CLIENT_DIRECTORY_HTTP_PORT": str(port), "CLIENT_DIRECTORY_HTTP_HOST": "127.0.0.1",
        "CLIENT_DIRECTORY_GROUP_ID": group_id, "PORTAL_JWT_SECRET": SECRET,
        "PORTAL_BASE_URL": "https://portal.bench", "KAFKA_ACKS": "1",
    }


def new_port() -> int:
    return free_port()
