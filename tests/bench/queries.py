"""3. Queries: GET /v1/clients on every tab (first page, search, a search that matches nothing,
missing-receipts filter, sorts by -name and by a figure, a cursor halfway down the tab) against the real
server in its own process, with one caller (p50, p99) and with 16 concurrent callers
(requests/s). The same client loop against /healthz is the ceiling of client plus HTTP stack,
measured in the same run. A search that matches nothing is also timed in a firm a tenth the
size of the big one: its cost must not grow with the firm."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from contracts.api import TabId
from events.config import StoreUrl
from events.store import ReadModel
from services.client_directory.application.directory import ClientDirectory
from services.client_directory.projections.clients import TAB_ROWS, Caller, assigned_only, encode_cursor, tabs_for
from tests.bench.common import Report, Row, Service, directory_env, new_port, percentile
from tests.bench.population import BIG_FIRM, MID_FIRM, NO_MATCH, SEARCH, Population
from tests.harness import token

CONCURRENCY = 16


@dataclass(frozen=True)
class Query:
    label: str  # "admin/all search"
    tab: str
    headers: dict[str, str]
    params: dict[str, str]


def deep_cursor(read_model: ReadModel, caller: Caller, tab: TabId) -> str | None:
    """A cursor halfway down the tab, in the API's own format (as if paged there)."""
    m = read_model.mark
    if assigned_only(caller, tab):
        where, params = (f"FROM cd_assignments WHERE partner_id = {m} AND user_id = {m} AND tab = {m}",
                         [caller.partner_id, caller.user_id, TAB_ROWS[tab]])
    else:
        where, params = f"FROM cd_clients WHERE partner_id = {m} AND tab = {m}", [caller.partner_id, TAB_ROWS[tab]]
    count = int(read_model.query(f"SELECT COUNT(*) AS n {where}", params)[0]["n"])
    if count < 2:
        return None
    rows = read_model.query(f"SELECT sort_key, client_id {where} ORDER BY sort_key, client_id LIMIT 1 OFFSET {m}",
                            [*params, count // 2])
    return encode_cursor({"t": tab.value, "d": False, "k": rows[0]["sort_key"], "i": rows[0]["client_id"]})


def query_set(store_url: str, population: Population, secret: str) -> list[Query]:
    directory = ClientDirectory(StoreUrl.parse("BENCH_DB", store_url))
    read_model = ReadModel(directory)
    queries: list[Query] = []
    try:
        for user, role in ((population.big_admin, "admin"), (population.big_accountant, "accountant")):
            caller = Caller(BIG_FIRM, user, role)
            headers = {"Authorization": f"Bearer {token(user, BIG_FIRM, role, secret=secret, expires_in=7200)}"}
            for tab in tabs_for(caller):
                name = f"{role}/{tab.value}"
                modes: list[tuple[str, dict[str, str]]] = [
                    ("first page", {}), ("search", {"q": SEARCH}), ("no match", {"q": NO_MATCH}),
                    ("missing receipts", {"missing_receipts": "true"}), ("sort -name", {"sort": "-name"}),
                    ("sort -missing_receipts", {"sort": "-missing_receipts"}),
                    ("sort ready_to_export", {"sort": "ready_to_export"}),
                ]
                cursor = deep_cursor(read_model, caller, tab)
                if cursor is not None:
                    modes.append(("deep cursor", {"cursor": cursor}))
                for mode, params in modes:
                    queries.append(Query(f"{name} {mode}", name, headers, {"tab": tab.value, **params}))
    finally:
        directory.close()
    return queries


async def _one_caller(client: httpx.AsyncClient, queries: list[Query], repeat: int) -> dict[str, list[float]]:
    latencies: dict[str, list[float]] = {}
    for query in queries:
        for _ in range(3):  # warm-up: first use of a statement, page cache
            (await client.get("/v1/clients", params=query.params, headers=query.headers)).raise_for_status()
        samples = latencies.setdefault(query.label, [])
        for _ in range(repeat):
            started = time.perf_counter()
            response = await client.get("/v1/clients", params=query.params, headers=query.headers)
            samples.append(time.perf_counter() - started)
            response.raise_for_status()
    return latencies


async def _concurrent(client: httpx.AsyncClient, requests: list[tuple[str, dict[str, str], dict[str, str]]],
                      seconds: float) -> tuple[float, list[float]]:
    """CONCURRENCY callers, each looping over the requests for `seconds`: (requests/s, latencies)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def caller(offset: int) -> int:
        done = 0
        while time.perf_counter() < deadline:
            path, params, headers = requests[(offset + done) % len(requests)]
            started = time.perf_counter()
            response = await client.get(path, params=params, headers=headers)
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()
            done += 1
        return done

    started = time.perf_counter()
    counts = await asyncio.gather(*(caller(i * 7) for i in range(CONCURRENCY)))
    return sum(counts) / (time.perf_counter() - started), latencies


async def _measure_httpx(port: int, queries: list[Query], repeat: int, seconds: float) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=CONCURRENCY * 2, max_keepalive_connections=CONCURRENCY * 2)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as client:
        single = await _one_caller(client, queries, repeat)
        floor: list[float] = []
        for _ in range(repeat):
            started = time.perf_counter()
            (await client.get("/healthz")).raise_for_status()
            floor.append(time.perf_counter() - started)
        health_rate, _ = await _concurrent(client, [("/healthz", {}, {})], seconds)
        rate, loaded = await _concurrent(
            client, [("/v1/clients", q.params, q.headers) for q in queries], seconds)
    return {"client": "httpx", "single": {label: (percentile(v, 50), percentile(v, 99))
                                          for label, v in _by_tab(queries, single).items()},
            "floor": percentile(floor, 50), "health_rate": health_rate, "rate": rate,
            "loaded": (percentile(loaded, 50), percentile(loaded, 99))}


def _by_tab(queries: list[Query], single: dict[str, list[float]]) -> dict[str, list[float]]:
    tabs: dict[str, list[float]] = {}
    for query in queries:
        tabs.setdefault(query.tab, []).extend(single[query.label])
    return tabs


WRK_SCRIPT = """
local reqs = {%s}
local i = 0
request = function()
  i = i %% #reqs + 1
  local r = reqs[i]
  return wrk.format("GET", r[1], {["Authorization"] = r[2]})
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%f %%f %%f %%d %%d\\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def _wrk(wrk: str, port: int, requests: list[tuple[str, str]], connections: int, seconds: float,
         folder: Path) -> tuple[float, float, float]:
    """wrk (C, one thread) over the requests in turn: (requests/s, p50 s, p99 s)."""
    entries = ", ".join(f"{{{_lua(path)}, {_lua(auth)}}}" for path, auth in requests)
    script = folder / f"wrk-{uuid.uuid4().hex[:6]}.lua"
    script.write_text(WRK_SCRIPT % entries)
    out = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s",
                          str(script), f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    count, duration, p50, p99, bad_status, errors = line.split()[1:]
    if int(bad_status) or int(errors):
        raise RuntimeError(f"wrk saw {bad_status} non-2xx answers and {errors} socket errors")
    return int(count) / float(duration), float(p50) / 1000, float(p99) / 1000


def _lua(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _measure_wrk(wrk: str, port: int, queries: list[Query], seconds: float, folder: Path) -> dict[str, Any]:
    def target(query: Query) -> tuple[str, str]:
        return f"/v1/clients?{urlencode(query.params)}", query.headers["Authorization"]

    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for query in queries:  # warm-up, and every answer is a 200
            for _ in range(3):
                client.get("/v1/clients", params=query.params, headers=query.headers).raise_for_status()
    single = {}
    for tab in dict.fromkeys(q.tab for q in queries):
        _, p50, p99 = _wrk(wrk, port, [target(q) for q in queries if q.tab == tab], 1, seconds, folder)
        single[tab] = (p50, p99)
    _, floor, _ = _wrk(wrk, port, [("/healthz", "")], 1, seconds, folder)
    health_rate, _, _ = _wrk(wrk, port, [("/healthz", "")], CONCURRENCY, seconds, folder)
    rate, p50, p99 = _wrk(wrk, port, [target(q) for q in queries], CONCURRENCY, seconds, folder)
    return {"client": "wrk", "single": single, "floor": floor, "health_rate": health_rate, "rate": rate,
            "loaded": (p50, p99)}


def _no_match_by_firm(port: int, population: Population, secret: str, repeat: int) -> dict[str, tuple[float, float]]:
    """p50 and p99 of a search that matches nothing on the admin's All tab of the big firm and of
    the firm a tenth its size, requests alternating between the two (one caller)."""
    firms = {BIG_FIRM: population.big_admin, MID_FIRM: population.mid_admin}
    headers = {firm: {"Authorization": f"Bearer {token(user, firm, 'admin', secret=secret, expires_in=7200)}"}
               for firm, user in firms.items()}
    params = {"tab": "all", "q": NO_MATCH}
    samples: dict[str, list[float]] = {firm: [] for firm in firms}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for n in range(repeat + 3):
            for firm in firms:
                started = time.perf_counter()
                response = client.get("/v1/clients", params=params, headers=headers[firm])
                elapsed = time.perf_counter() - started
                response.raise_for_status()
                if response.json()["items"]:
                    raise RuntimeError(f"{NO_MATCH!r} matched clients of {firm}")
                if n >= 3:  # warm-up
                    samples[firm].append(elapsed)
    return {firm: (percentile(v, 50), percentile(v, 99)) for firm, v in samples.items()}


def _check_populated(port: int, queries: list[Query]) -> None:
    """Measure full pages or nothing: the admin's All tab must list clients (a read model
    dropped at the service's start once made this benchmark time empty pages)."""
    query = next(q for q in queries if q.label == "admin/all first page")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        page = client.get("/v1/clients", params=query.params, headers=query.headers).json()
    if not page.get("items"):
        raise RuntimeError("the admin's All tab is empty: the service does not serve the read model built "
                           "for the benchmark")


def bench_queries(report: Report, store_url: str, kind: str, population: Population, secret: str,
                  folder: Path, memory: dict[str, float], repeat: int, seconds: float) -> None:
    queries = query_set(store_url, population, secret)
    port = new_port()
    # No broker on purpose (a closed port): the read model is what is measured, not the consumer.
    service = Service("services.client_directory",
                      directory_env(f"127.0.0.1:{new_port()}", store_url, port, "bench-queries"),
                      folder / f"queries-{kind}.log", port=port)
    wrk = shutil.which("wrk")
    try:
        service.wait_until("/v1/clients", queries[0].headers)
        _check_populated(port, queries)
        if wrk:
            result = _measure_wrk(wrk, port, queries, seconds, folder)
        else:
            result = asyncio.run(_measure_httpx(port, queries, repeat, seconds))
        no_match = _no_match_by_firm(port, population, secret, repeat)
    finally:
        memory[f"client_directory (queries, {kind})"] = service.stop()
    client = result["client"]
    report.add(Row("3 queries", f"{kind}: /healthz, one caller p50 ({client}: client + HTTP floor)",
                   result["floor"] * 1000, "ms"))
    for tab, (p50, p99) in result["single"].items():
        report.add(Row("3 queries", f"{kind}: {tab}, 6 modes, one caller p50", p50 * 1000, "ms"))
        report.add(Row("3 queries", f"{kind}: {tab}, 6 modes, one caller p99", p99 * 1000, "ms", "", None,
                       "<= 10 ms", p99 * 1000 <= 10.0))
    (mid_p50, mid_p99), (big_p50, big_p99) = no_match[MID_FIRM], no_match[BIG_FIRM]
    mid_size, big_size = population.firm_sizes[MID_FIRM], population.firm_sizes[BIG_FIRM]
    report.add(Row("3 queries", f"{kind}: admin/all, search matching nothing, firm of {mid_size:,}, p50",
                   mid_p50 * 1000, "ms", note=f"p99 {mid_p99 * 1000:.2f} ms"))
    report.add(Row("3 queries", f"{kind}: admin/all, search matching nothing, firm of {big_size:,}, p50",
                   big_p50 * 1000, "ms", f"firm of {mid_size:,}", mid_p50 * 1000, "<= 150% (size: 1000%)",
                   big_p50 <= 1.5 * mid_p50, note=f"p99 {big_p99 * 1000:.2f} ms"))
    rate, health_rate = result["rate"], result["health_rate"]
    p50, p99 = result["loaded"]
    report.add(Row("3 queries", f"{kind}: /healthz, {CONCURRENCY} callers ({client})", health_rate, "req/s"))
    report.add(Row("3 queries", f"{kind}: GET /v1/clients, all {len(queries)} queries, {CONCURRENCY} callers",
                   rate, "req/s", "/healthz", health_rate, ">= 1,000 req/s and >= 20%",
                   rate >= 1000 and rate >= 0.2 * health_rate,
                   note=f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms under load"))
