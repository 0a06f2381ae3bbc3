"""The client directory's composition root: every object the server, the CLI commands and the
tests use is built here from Settings, with fakes injected where a test needs them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from contracts.events import Topic
from events import tracing
from events.inbox import InboxSink
from events.kafka import TrackedConsumer, make_broker
from events.leadership import LeaderOnly, Leadership
from events.outbox import OutboxRelay
from events.runtime import Runtime, add_operational_routes
from events.store import ReadModel
from services.client_directory.adapters.auth import TokenVerifier
from services.client_directory.adapters.http import HttpContext, build_api
from services.client_directory.adapters.portal import mount_portal
from services.client_directory.application.directory import ClientDirectory
from services.client_directory.application.live import LiveTabs
from services.client_directory.config import Settings
from services.client_directory.domain.model import Rejected as DirectoryRejected
from services.client_directory.projections.clients import ClientQueries, ClientsProjection
from services.client_directory.projections.reminders import ReminderHistory

SERVICE = "client_directory"
# portal.notification-deliveries: the notifier's outcomes, for the reminder history.
CONSUMES = (Topic.PARTNER_MEMBERS, Topic.PARTNER_CLIENTS, Topic.CLIENT_METRICS, Topic.NOTIFICATIONS,
            Topic.NOTIFICATION_DELIVERIES)


@dataclass
class ClientDirectoryService:
    settings: Settings
    directory: ClientDirectory
    read_model: ReadModel
    projection: ClientsProjection
    queries: ClientQueries
    broker: KafkaBroker
    consumer: TrackedConsumer
    relay: OutboxRelay
    runtime: Runtime
    api: FastAPI

    async def start(self) -> None:
        await self.runtime.start()

    async def stop(self) -> None:
        await self.runtime.stop()


def open_directory(settings: Settings) -> ClientDirectory:
    """The event store (what `events show` and the rebuild need, and nothing else)."""
    return ClientDirectory(settings.store)


def inbox_sink(directory: ClientDirectory) -> InboxSink:
    """Where inbound events go: deduplicated by id, applied by `handle`, rejections recorded."""
    return InboxSink(SERVICE, directory, tracing.traced_handler(SERVICE, directory.handle),
                     rejected=DirectoryRejected)


def consumed_topics() -> list[str]:
    return [t.value for t in CONSUMES]


def bootstrap(
    settings: Settings,
    *,
    directory: ClientDirectory | None = None,
    broker: KafkaBroker | None = None,
    clock: Callable[[], float] = time.time,
    session_timeout_ms: int | None = None,
) -> ClientDirectoryService:
    """The whole service: store, read model, consumer, outbox relay, runtime and HTTP API."""
    tracing.configure(SERVICE, settings.tracing)  # before the parts that ask for the tracer
    directory = directory or open_directory(settings)
    read_model = ReadModel(directory)
    projection = ClientsProjection(directory, read_model)
    queries = ClientQueries(read_model)
    reminders = ReminderHistory(directory, read_model)
    broker = broker or make_broker(settings.kafka, client_id=SERVICE)
    timeout = session_timeout_ms or settings.kafka.session_timeout_ms
    consumer = TrackedConsumer(
        broker, inbox_sink(directory), consumed_topics(), settings.group_id,
        session_timeout_ms=timeout, heartbeat_interval_ms=max(500, timeout // 5),
        max_records=settings.kafka.max_poll_records,
    )
    relay = OutboxRelay(directory, broker)
    # Every instance projects (read-your-writes: the instance that took a command catches up
    # its projection before answering); only the leader relays, so no event goes out twice.
    leadership = Leadership(settings.store, SERVICE)
    runtime = Runtime(SERVICE, directory, broker, [projection, reminders, LeaderOnly(relay, leadership)],
                      leadership=leadership)
    verifier = TokenVerifier(settings.jwt_secret, clock=clock, max_lifetime_s=settings.token_max_lifetime_s)
    api = build_api(HttpContext(directory, projection, queries, verifier, settings.portal_base_url,
                                wake_relay=runtime.runner.wake, reminders=reminders,
                                live=LiveTabs(directory, projection, queries)))
    api.state.authenticate = verifier  # writes are authenticated before their body is read
    add_operational_routes(api, runtime)
    mount_portal(api, settings, read_model)
    return ClientDirectoryService(settings, directory, read_model, projection, queries, broker,
                                  consumer, relay, runtime, api)

