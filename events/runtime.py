"""What both services run: the broker connection (with backoff while it is not up), the
tracked consumer, the store followers, the leadership among instances on one store, and an
HTTP server with health, readiness and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import uvicorn
from eventsourcing.persistence import InterfaceError, OperationalError
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from events import tracing
from events.config import StoreUrl
from events.dialect import dialect_for
from events.follower import FollowerRunner, LogFollower
from events.http_limits import Limits, RequestLimits, protocol_with
from events.leadership import Leadership
from events.metrics import HTTP_LATENCY, LEADER
from events.store import EventStoreApplication

T = TypeVar("T")
log = logging.getLogger("events.runtime")
# Bulk assignment names up to 500 client ids of up to 200 characters each: more than a
# command's 32 KiB, so that route alone takes up to 256 KiB.
DEFAULT_LIMITS = Limits(larger_bodies=(("/v1/accountants/", 256 * 1024),))


class Runtime:
    """`leadership`, when given, is tried from the start (before the broker is connected) and
    kept until stop; the jobs that must run in one instance only check `leadership.held` (see
    events.leadership.LeaderOnly) and are woken by `on_leading` when this instance takes over."""

    def __init__(
        self,
        service: str,
        app: EventStoreApplication,
        broker: KafkaBroker,
        followers: Sequence[LogFollower],
        *,
        background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
        leadership: Leadership | None = None,
        on_leading: Sequence[Callable[[], None]] = (),
        check_every: float = 5.0,
        try_every: float = 1.0,
    ) -> None:
        self.service = service
        self.app = app
        self.broker = broker
        self.runner = FollowerRunner(followers)
        self.background = list(background)
        self.leadership = leadership
        self.on_leading = [self.runner.wake, *on_leading]
        self.check_every, self.try_every = check_every, try_every
        self.broker_connected = False
        self.started_at = time.monotonic()
        self._tasks: list[asyncio.Task[Any]] = []

    # --- readiness ------------------------------------------------------------------------------

    def store_reachable(self) -> tuple[bool, str]:
        try:
            self.app.recorder.max_notification_id()
            return True, "ok"
        except Exception as error:
            return False, f"{type(error).__name__}: {error}"

    async def broker_reachable(self) -> tuple[bool, str]:
        if not self.broker_connected:
            return False, "not connected yet"
        try:
            await asyncio.wait_for(self.broker.ping(timeout=2.0), timeout=3.0)
            return True, "ok"
        except Exception as error:
            return False, f"{type(error).__name__}: {error}"

    # --- life cycle -----------------------------------------------------------------------------

    async def connect_broker(self) -> None:
        delay, attempt = 0.5, 0
        while True:
            attempt += 1
            try:
                await self.broker.start()
                self.broker_connected = True
                log.info("connected to Kafka (attempt %d)", attempt)
                return
            except Exception as error:
                log.warning("Kafka not reachable (attempt %d): %s; retrying in %.1fs", attempt, error, delay)
                with contextlib.suppress(Exception):
                    await self.broker.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)

    async def lead(self) -> None:
        """Try to take the leadership (every `try_every` s), then check it is still ours (every
        `check_every` s); wake the leader-only jobs on taking over. Released when stopped."""
        leadership = self.leadership
        assert leadership is not None
        try:
            while True:
                was = leadership.held
                held = await asyncio.to_thread(leadership.try_acquire)
                LEADER.labels(self.service).set(int(held))
                if held and not was:
                    for wake in self.on_leading:
                        wake()
                await asyncio.sleep(self.check_every if held else self.try_every)
        finally:
            leadership.release()
            LEADER.labels(self.service).set(int(leadership.held))

    def wake_on_write(self, wake: Callable[[], None]) -> None:
        """Run `wake` on this event loop whenever the store is written, from any thread."""
        loop = asyncio.get_running_loop()
        def listener() -> None:
            loop.call_soon_threadsafe(wake)

        self.app.listeners.append(listener)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for follower in self.runner.followers:
            follower.bind(loop)
        self.wake_on_write(self.runner.wake)
        if self.leadership is not None:
            # Before the broker: leading does not need it (the notifier sends while it is down).
            self._tasks.append(asyncio.create_task(self.lead(), name="leading"))
        await self.connect_broker()
        self._tasks.append(asyncio.create_task(self.runner.run(), name="followers"))
        for job in self.background:
            self._tasks.append(asyncio.create_task(job(), name=getattr(job, "__name__", "job")))

    async def stop(self) -> None:
        self.runner.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.broker.stop()
        if self.leadership is not None:
            self.leadership.release()  # also when `lead` never ran (stopped before start)


def add_operational_routes(api: FastAPI, runtime: Runtime) -> None:
    @api.exception_handler(OperationalError)
    @api.exception_handler(InterfaceError)
    async def store_unavailable(request: Request, error: Exception) -> JSONResponse:
        # The database is restarting or unreachable: a passing condition, not a bug. The
        # caller retries; the store's pool reconnects on its own.
        log.warning("store unavailable for %s %s: %s", request.method, request.url.path, error)
        return JSONResponse({"type": "about:blank", "title": "Service Unavailable", "status": 503,
                             "detail": "the store is unavailable; try again shortly"},
                            status_code=503, media_type="application/problem+json", headers={"Retry-After": "2"})

    api.add_middleware(HttpMetrics, service=runtime.service)

    @api.get("/healthz", tags=["operations"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz", tags=["operations"], summary="Readiness: broker and store reachable")
    async def readyz() -> JSONResponse:
        store_ok, store_detail = await asyncio.to_thread(runtime.store_reachable)
        broker_ok, broker_detail = await runtime.broker_reachable()
        ready = store_ok and broker_ok
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "store": store_detail, "broker": broker_detail},
            status_code=200 if ready else 503,
        )

    @api.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class HttpMetrics:
    """Request latency per route and status, as plain ASGI: Starlette's `@app.middleware`
    (BaseHTTPMiddleware) runs each request through an extra task and streams, which cost
    about 15% of a Clients page query."""

    def __init__(self, app: Any, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless the app starts a response

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        tracer = tracing.tracer(self.service)
        span = tracing.server_span(tracer, scope) if tracer is not None else None
        try:
            if span is None:
                await self.app(scope, receive, sending)
            else:
                with tracing.active(span):
                    await self.app(scope, receive, sending)
        finally:
            # The router puts the matched route in the scope: its path template, not the URL.
            path = getattr(scope.get("route"), "path", "unmatched")
            HTTP_LATENCY.labels(self.service, scope["method"], path, str(status)).observe(
                time.perf_counter() - started)
            if span is not None:
                tracing.end_server_span(span, scope["method"], path, status)


def http_server(front: Swappable, host: str, port: int, limits: Limits = DEFAULT_LIMITS) -> uvicorn.Server:
    """uvicorn serving `front` within the request limits (events.http_limits). Writes to the
    API are authenticated before their body is read when the app names how (`state.authenticate`)."""

    def authenticate(authorization: str | None) -> object:
        check = getattr(getattr(front.app, "state", None), "authenticate", None)
        return check(authorization) if check is not None else None

    config = uvicorn.Config(RequestLimits(front, limits, authenticate), host=host, port=port, log_level="warning",
                            lifespan="off", access_log=False, http=protocol_with(limits),
                            timeout_keep_alive=5)
    return uvicorn.Server(config)


class Swappable:
    """An ASGI app whose target is replaced once the service is built: HTTP answers from the
    first second (liveness yes, readiness no, with the reason) while the store is not there."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def starting_app(service: str, waiting: dict[str, str]) -> FastAPI:
    api = FastAPI(title=f"{service} (starting)")

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz() -> JSONResponse:
        return JSONResponse({"status": "not ready", **waiting}, status_code=503)

    @api.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    async def unavailable(path: str) -> JSONResponse:
        return JSONResponse({"type": "about:blank", "title": "Service Unavailable", "status": 503,
                             "detail": f"{service} is starting: {waiting.get('store', '')}"},
                            status_code=503, media_type="application/problem+json", headers={"Retry-After": "5"})

    return api


def run_service(service: str, build: Callable[[], tuple[FastAPI, Runtime]], host: str, port: int,
                store: StoreUrl | None = None) -> int:
    """`serve`: the entry point of both services, until Ctrl-C or SIGTERM."""
    # SIGTERM stops as Ctrl-C does: uvicorn stops serving, then re-raises the signal it caught,
    # which must reach asyncio's SIGINT handling (runtime.stop(): consumers, then leadership),
    # not Python's default action, which ended the process before it stopped anything.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: signal.raise_signal(signal.SIGINT))
    try:
        with contextlib.suppress(KeyboardInterrupt):
            run(serve_when_ready(service, build, host, port, store=store))
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the services' event loop (serve, and commands that talk to Kafka or SMTP)."""
    with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
        return runner.run(main)


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (it is a dependency; not on every platform): the same
    asyncio API, with libuv doing the I/O."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


async def serve_when_ready(service: str, build: Callable[[], tuple[FastAPI, Runtime]], host: str, port: int,
                           store: StoreUrl | None = None) -> None:
    """Serve HTTP at once, build the service (open its store) with backoff, then run it.

    A store that is not reachable yet (or two instances creating the same tables at once on
    a fresh database) is waited for, with one log line per attempt; readiness says why.
    """
    waiting = {"store": "opening", "broker": "not connected yet"}
    front = Swappable(starting_app(service, waiting))
    server = http_server(front, host, port)
    server_task = asyncio.create_task(server.serve(), name="http")
    delay, attempt = 0.5, 0
    while True:
        attempt += 1
        try:
            api, runtime = await asyncio.to_thread(build)
            break
        except Exception as error:
            if server_task.done():
                server_task.result()  # the port could not be bound: that is fatal
            # A pool's "no connection after 5 s" hides the cause: ask the database itself.
            cause = await asyncio.to_thread(dialect_for(store).probe, store) if store is not None else None
            waiting["store"] = cause or f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            log.warning("store not ready (attempt %d): %s; retrying in %.1fs", attempt, waiting["store"], delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15.0)
    front.app = api
    try:
        await runtime.start()
        log.info("%s serving on http://%s:%d", service, host, port)
        await server_task
    finally:
        server.should_exit = True
        await runtime.stop()
        with contextlib.suppress(Exception):
            await server_task


async def serve(api: FastAPI, runtime: Runtime, host: str, port: int) -> None:
    """Serve HTTP at once (readiness says what is missing), then connect and run the rest."""
    server = http_server(Swappable(api), host, port)
    server_task = asyncio.create_task(server.serve(), name="http")
    try:
        await runtime.start()
        log.info("%s serving on http://%s:%d", runtime.service, host, port)
        await server_task
    finally:
        server.should_exit = True
        await runtime.stop()
        with contextlib.suppress(Exception):
            await server_task
