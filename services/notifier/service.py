"""Wiring of the notifier: store, consumer, sender, outbox relay and the HTTP endpoints."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from contracts.events import Topic
from events.inbox import InboxSink
from events.kafka import TrackedConsumer, make_broker
from events.outbox import OutboxRelay
from events.runtime import Runtime, add_operational_routes
from services.notifier.adapters.smtp import SmtpMailer
from services.notifier.application.notifier import Notifier
from services.notifier.application.sender import MailSender
from services.notifier.config import Settings

SERVICE = "notifier"
CONSUMES = (Topic.PARTNER_MEMBERS, Topic.PARTNER_CLIENTS, Topic.CLIENT_METRICS, Topic.NOTIFICATIONS,
            Topic.CLIENT_DIRECTORY)


@dataclass
class NotifierService:
    settings: Settings
    notifier: Notifier
    broker: KafkaBroker
    consumer: TrackedConsumer
    relay: OutboxRelay
    sender: MailSender
    mailer: SmtpMailer
    runtime: Runtime
    api: FastAPI


def build(settings: Settings, *, session_timeout_ms: int = 10_000, retry_base_delay: float = 1.0) -> NotifierService:
    notifier = Notifier(settings.store)
    notifier.mail_from = settings.mail_from
    broker = make_broker(settings.kafka, client_id=SERVICE)
    sink = InboxSink(SERVICE, notifier, notifier.handle)
    consumer = TrackedConsumer(
        broker, sink, [t.value for t in CONSUMES], settings.group_id,
        session_timeout_ms=session_timeout_ms, heartbeat_interval_ms=max(500, session_timeout_ms // 5),
    )
    relay = OutboxRelay(notifier, broker)
    mailer = SmtpMailer(settings.smtp)
    sender = MailSender(notifier, mailer, mail_from=settings.mail_from, base_url=settings.portal_base_url,
                        unsubscribe_base=settings.public_base_url, base_delay=retry_base_delay)

    async def sending() -> None:
        relay.loop = asyncio.get_running_loop()
        runtime.wake_on_write(sender.wake.set)
        await sender.run()

    runtime = Runtime(SERVICE, notifier, broker, [relay], background=[sending])
    api = FastAPI(title="Partner portal: notifier", version="1.0.0")
    add_operational_routes(api, runtime)
    return NotifierService(settings, notifier, broker, consumer, relay, sender, mailer, runtime, api)
