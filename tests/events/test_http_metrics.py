"""HTTP latency is recorded per route template and status, whatever the route answers."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI, HTTPException

from events.metrics import HTTP_LATENCY
from events.runtime import HttpMetrics


def count(service: str, method: str, path: str, status: str) -> float:
    metric = HTTP_LATENCY.labels(service, method, path, status)
    return sum(bucket.get() for bucket in metric._buckets)  # type: ignore[attr-defined]


def test_latency_is_labelled_by_route_template_and_status() -> None:
    api = FastAPI()

    @api.get("/v1/clients/{client_id}")
    async def client(client_id: str) -> dict[str, str]:
        if client_id == "gone":
            raise HTTPException(404, "no such client")
        return {"client_id": client_id}

    @api.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    api.add_middleware(HttpMetrics, service="metrics-test")

    async def calls() -> list[int]:
        transport = httpx.ASGITransport(app=api, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return [(await http.get(path)).status_code for path in ("/v1/clients/a", "/v1/clients/b",
                                                                    "/v1/clients/gone", "/nowhere", "/boom")]

    assert asyncio.run(calls()) == [200, 200, 404, 404, 500]
    assert count("metrics-test", "GET", "/v1/clients/{client_id}", "200") == 2
    assert count("metrics-test", "GET", "/v1/clients/{client_id}", "404") == 1
    assert count("metrics-test", "GET", "unmatched", "404") == 1
    assert count("metrics-test", "GET", "/boom", "500") == 1
