"""Wiring of the client directory: store, projection, consumer, outbox relay and HTTP API."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from contracts.events import Topic
from events.inbox import InboxSink
from events.kafka import TrackedConsumer, make_broker
from events.leadership import LeaderOnly, Leadership
from events.outbox import OutboxRelay
from events.runtime import Runtime, add_operational_routes
from events.store import ReadModel
from services.client_directory.adapters.http import build_api
from services.client_directory.adapters.portal import mount_portal
from services.client_directory.application.directory import ClientDirectory
from services.client_directory.config import Settings
from services.client_directory.domain.model import Rejected as DirectoryRejected
from services.client_directory.projections.clients import ClientQueries, ClientsProjection

SERVICE = "client_directory"
CONSUMES = (Topic.PARTNER_MEMBERS, Topic.PARTNER_CLIENTS, Topic.CLIENT_METRICS, Topic.NOTIFICATIONS)


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


def build(settings: Settings, *, session_timeout_ms: int = 10_000) -> ClientDirectoryService:
    directory = ClientDirectory(settings.store)
    read_model = ReadModel(directory)
    projection = ClientsProjection(directory, read_model)
    queries = ClientQueries(read_model)
    broker = make_broker(settings.kafka, client_id=SERVICE)
    sink = InboxSink(SERVICE, directory, directory.handle, rejected=DirectoryRejected)
    consumer = TrackedConsumer(
        broker, sink, [t.value for t in CONSUMES], settings.group_id,
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(500, session_timeout_ms // 5),
        max_records=settings.kafka.max_poll_records,
    )
    relay = OutboxRelay(directory, broker)
    # Every instance projects (read-your-writes: the instance that took a command catches up
    # its projection before answering); only the leader relays, so no event goes out twice.
    leadership = Leadership(settings.store, SERVICE)
    runtime = Runtime(SERVICE, directory, broker, [projection, LeaderOnly(relay, leadership)], leadership=leadership)
    api = build_api(
        directory, projection, queries,
        jwt_secret=settings.jwt_secret, portal_base_url=settings.portal_base_url,
        wake_relay=runtime.runner.wake,
    )
    add_operational_routes(api, runtime)
    mount_portal(api, settings, read_model)
    return ClientDirectoryService(settings, directory, read_model, projection, queries, broker,
                                  consumer, relay, runtime, api)
