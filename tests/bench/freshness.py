"""4. Freshness: time from publishing an event to seeing it in the API, at a steady rate.

The stream is the ingest workload at `rate` events/s; every 50 ms one of them is a marker (a
new client in a firm of its own, named by its sequence number). One poller asks the API for
that firm's newest markers every 10 ms and notes when each first appears; the poll period
bounds the error of each figure (<= 10 ms + one request)."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer

from contracts.events import Topic
from tests.bench.common import SECRET, Report, Row, Service, directory_env, new_port, percentile
from tests.bench.workload import cloud_event, member, platform_events
from tests.harness import token

MARKER_FIRM = "firm-fresh"
MARKER_EVERY = 0.05
POLL_EVERY = 0.01
TICK = 0.01


async def _run(bootstrap: str, port: int, rate: int, seconds: float) -> tuple[list[float], int, float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, acks=1)
    await producer.start()
    admin = f"{MARKER_FIRM}-admin"
    headers = {"Authorization": f"Bearer {token(admin, MARKER_FIRM, 'admin', secret=SECRET, expires_in=3600)}"}
    published: dict[str, float] = {}
    seen: dict[str, float] = {}
    background = platform_events(10 ** 9, prefix="fresh-")
    stop = asyncio.Event()
    stopped_at = 0.0
    achieved = 0.0
    try:
        params = {"tab": "onboarding", "sort": "-name", "limit": "200"}

        async def warm_up(client: httpx.AsyncClient) -> None:
            """Until the consumer has joined its group and applied a first event."""
            first = member(MARKER_FIRM, admin, "admin", "Ada Admin")
            await producer.send_and_wait(first.topic, first.value, key=first.key)
            await producer.send_and_wait(Topic.PARTNER_CLIENTS.value, cloud_event(
                "client.onboarding_started.v1", MARKER_FIRM, f"{MARKER_FIRM}-warm-up",
                {"client_id": f"{MARKER_FIRM}-warm-up", "client_name": "warm-up", "invited_by": admin}),
                key=f"{MARKER_FIRM}-warm-up".encode())
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                response = await client.get("/v1/clients", params=params, headers=headers)
                if response.status_code == 200 and response.json()["items"]:
                    return
                await asyncio.sleep(0.1)
            raise TimeoutError("the client directory applied nothing within 120 s")

        async def poll(client: httpx.AsyncClient) -> None:
            while not stop.is_set() or len(seen) < len(published):
                response = await client.get("/v1/clients", params=params, headers=headers)
                now = time.perf_counter()
                if response.status_code == 200:
                    for item in response.json()["items"]:
                        if item["name"] in published:
                            seen.setdefault(item["name"], now)
                if stop.is_set() and now > stopped_at + 5:
                    return  # what is not visible 5 s after the end counts as not seen
                await asyncio.sleep(POLL_EVERY)

        async def publish() -> None:
            nonlocal stopped_at
            started = time.perf_counter()
            sent = 0
            next_marker = started
            while (now := time.perf_counter()) - started < seconds:
                due = int((now - started) * rate)
                while sent < due:
                    if now >= next_marker:
                        name = f"marker-{len(published):06d}"
                        client = f"{MARKER_FIRM}-{name}"
                        await producer.send(Topic.PARTNER_CLIENTS.value, cloud_event(
                            "client.onboarding_started.v1", MARKER_FIRM, client,
                            {"client_id": client, "client_name": name, "invited_by": admin}), key=client.encode())
                        published[name] = time.perf_counter()  # handed to the producer (sent within linger_ms)
                        next_marker += MARKER_EVERY
                    else:
                        record = next(background)
                        await producer.send(record.topic, record.value, key=record.key)
                    sent += 1
                await asyncio.sleep(TICK)
            await producer.flush()
            stopped_at = time.perf_counter()
            stop.set()
            nonlocal achieved
            achieved = sent / (stopped_at - started)

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            await warm_up(client)
            await asyncio.gather(poll(client), publish())
    finally:
        await producer.stop()
    delays = [seen[name] - at for name, at in published.items() if name in seen]
    return delays, len(published) - len(delays), achieved


def bench_freshness(report: Report, bootstrap: str, store_url: str, folder: Path, memory: dict[str, float],
                    rate: int, seconds: float) -> None:
    port = new_port()
    service = Service("services.client_directory",
                      directory_env(bootstrap, store_url, port, f"bench-fresh-{uuid.uuid4().hex[:6]}"),
                      folder / "freshness.log", port=port)
    try:
        service.wait_until("/readyz")
        delays, missing, achieved = asyncio.run(_run(bootstrap, port, rate, seconds))
    finally:
        memory["client_directory (freshness)"] = service.stop()
    p50, p99 = percentile(delays, 50) * 1000, percentile(delays, 99) * 1000
    note = f"{len(delays)} markers in {achieved:,.0f} events/s published over {seconds:.0f}s"
    if missing:
        note += f"; {missing} never seen within 5 s of the end"
    report.add(Row("4 freshness", "publish to visible in the API, p50", p50, "ms", note=note))
    report.add(Row("4 freshness", "publish to visible in the API, p99", p99, "ms", "", None, "<= 250 ms",
                   p99 <= 250 and not missing, note=note))
