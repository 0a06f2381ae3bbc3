"""2. Rebuild: events per second of `projections rebuild` (the real command, in its own
process) beside the raw select-and-decode rate of the same store."""

from __future__ import annotations

import time
from pathlib import Path

from events.config import StoreUrl
from services.client_directory.application.directory import ClientDirectory
from tests.bench.common import Report, Row, Service, directory_env, new_port
from tests.bench.population import Population, populate

PAGE = 2000


def make_store(store_url: str, clients: int, big_firm_clients: int) -> Population:
    directory = ClientDirectory(StoreUrl.parse("BENCH_DB", store_url))
    try:
        return populate(directory, clients, big_firm_clients)
    finally:
        directory.close()


def select_and_decode_rate(store_url: str, limit: int | None = None) -> tuple[float, int]:
    """recorder.select_notifications + mapper.to_domain_event over the whole log: what any
    follower of this store pays before doing anything with an event."""
    directory = ClientDirectory(StoreUrl.parse("BENCH_DB", store_url))
    try:
        seen, start = 0, 0
        started = time.perf_counter()
        while limit is None or seen < limit:
            batch = directory.recorder.select_notifications(start=start, limit=PAGE, inclusive_of_start=False)
            if not batch:
                break
            for notification in batch:
                directory.mapper.to_domain_event(notification)
            seen += len(batch)
            start = batch[-1].id
        return seen / (time.perf_counter() - started), seen
    finally:
        directory.close()


def run_rebuild(store_url: str, bootstrap: str, folder: Path, label: str) -> tuple[float, float]:
    """`python -m services.client_directory projections rebuild`: (seconds, peak RSS MB)."""
    service = Service("services.client_directory", directory_env(bootstrap, store_url, new_port(), "bench-rebuild"),
                      folder / f"rebuild-{label}.log", args=["projections", "rebuild"])
    started = time.perf_counter()
    code = service.process.wait()
    seconds = time.perf_counter() - started
    peak = service.stop()
    if code != 0:
        raise RuntimeError(f"projections rebuild exited with {code}; see {service.log}")
    return seconds, peak


def bench_rebuild(report: Report, store_url: str, kind: str, population: Population, bootstrap: str,
                  folder: Path, memory: dict[str, float]) -> None:
    raw, seen = select_and_decode_rate(store_url)
    seconds, peak = run_rebuild(store_url, bootstrap, folder, kind)
    memory[f"client_directory projections rebuild ({kind})"] = peak
    rate = population.events / seconds
    report.add(Row("2 rebuild", f"{kind}: raw select + decode, {seen:,} events", raw, "events/s"))
    report.add(Row("2 rebuild", f"{kind}: projections rebuild, {population.events:,} events", rate, "events/s",
                   "select+decode", raw, ">= 50%", rate >= 0.5 * raw,
                   note=f"whole command in its own process, {seconds:.1f}s including start-up and switch-over"))
