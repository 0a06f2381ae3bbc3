"""7. Export: GET /v1/clients.csv of every admin tab of the largest firm (50,000 clients at full
size), streamed from the real server in its own process. Rows/s, and the server's resident
memory before and at its peak while streaming: constant memory means the peak stays near the
start whatever the size.

    python -m tests.bench.export --clients 100000   # one firm on SQLite, on its own
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import httpx

from events.config import StoreUrl
from events.store import ReadModel
from services.client_directory.application.directory import ClientDirectory
from services.client_directory.projections.clients import ClientsProjection
from tests.bench.common import SECRET, Report, Row, Service, directory_env, new_port
from tests.bench.population import Population, populate
from tests.harness import token

TABS = ("invitations", "onboarding", "all")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class PeakSampler(threading.Thread):
    """The largest resident set of a process seen every few milliseconds."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self._done = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.005)

    def stop(self) -> float:
        self._done.set()
        self.join()
        return self.peak


def stream_rows(port: int, headers: dict[str, str]) -> int:
    """Every admin tab as CSV, read as it streams; the rows, without their header rows."""
    rows = 0
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120, headers=headers) as client:
        for tab in TABS:
            with client.stream("GET", "/v1/clients.csv", params={"tab": tab}) as response:
                response.raise_for_status()
                for chunk in response.iter_bytes():
                    rows += chunk.count(b"\r\n")
            rows -= 1
    return rows


def bench_export(report: Report, store_url: str, kind: str, population: Population, folder: Path,
                 memory: dict[str, float]) -> None:
    port = new_port()
    # No broker on purpose (a closed port): the read model and the HTTP stream are measured.
    service = Service("services.client_directory",
                      directory_env(f"127.0.0.1:{new_port()}", store_url, port, "bench-export"),
                      folder / f"export-{kind}.log", port=port)
    headers = {"Authorization": f"Bearer {token(population.big_admin, population.firms[0], 'admin', secret=SECRET)}"}
    try:
        service.wait_until("/v1/clients", headers)
        stream_rows(port, headers)  # once to warm the caches and the allocator
        before = rss_mb(service.pid)
        sampler = PeakSampler(service.pid)
        sampler.start()
        started = time.perf_counter()
        rows = stream_rows(port, headers)
        seconds = time.perf_counter() - started
        peak = sampler.stop()
    finally:
        memory[f"client_directory (export, {kind})"] = service.stop()
    report.add(Row("7 export", f"{kind}: /v1/clients.csv, {rows:,} rows of 3 tabs", rows / seconds, "rows/s",
                   note=f"{seconds:.2f} s"))
    report.add(Row("7 export", f"{kind}: server RSS growth while streaming (from {before:.0f} MB)",
                   peak - before, "MB", "", None, "<= 50 MB", peak - before <= 50.0))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50_000, help="clients of the one firm (SQLite)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-export-"))
    url = f"sqlite:///{folder / 'directory.db'}"
    directory = ClientDirectory(StoreUrl.parse("BENCH_DB", url))
    population = populate(directory, args.clients, args.clients)
    projection = ClientsProjection(directory, ReadModel(directory))
    projection.catch_up()
    directory.close()
    report, memory = Report(), dict[str, float]()
    bench_export(report, url, "sqlite", population, folder, memory)
    print(report.table())
    print(f"peak RSS of the server over its life: {memory}")


if __name__ == "__main__":
    main()
