"""Wiring of the notifier: store, consumer, schedule index, digest scheduler, reminder
dispatcher, sender, outbox relay and the HTTP endpoints.

Every replica consumes (the group shares the partitions) and answers HTTP; only the replica
holding the leadership lock schedules digests, dispatches reminders, sends, relays the outbox
and keeps the schedule index, so no email goes out once per replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from contracts.events import Topic
from events.inbox import InboxSink
from events.kafka import TrackedConsumer, make_broker
from events.leadership import LeaderOnly, Leadership
from events.outbox import OutboxRelay
from events.runtime import Runtime, add_operational_routes
from services.notifier.adapters.http import add_unsubscribe_routes
from services.notifier.adapters.smtp import SmtpMailer
from services.notifier.application.digests import DigestScheduler
from services.notifier.application.notifier import Notifier
from services.notifier.application.reminders import ReminderDispatcher, fact_watermark
from services.notifier.application.sender import MailSender
from services.notifier.application.unsubscribe import Unsubscriber, UnsubscribeTokens
from services.notifier.config import Settings
from services.notifier.domain.model import Rejected as NotifierRejected
from services.notifier.projections.schedule import ScheduleIndex

log = logging.getLogger("notifier.service")

SERVICE = "notifier"
CONSUMES = (Topic.PARTNER_MEMBERS, Topic.PARTNER_CLIENTS, Topic.CLIENT_METRICS, Topic.NOTIFICATIONS,
            Topic.CLIENT_DIRECTORY)
# What a reminder's recipients and figures depend on (everything but portal.notifications).
FACT_TOPICS = (Topic.PARTNER_MEMBERS, Topic.PARTNER_CLIENTS, Topic.CLIENT_METRICS, Topic.CLIENT_DIRECTORY)
SCHEDULER_MAX_SLEEP = 60.0  # the scheduler looks at least once a minute


class NotifierRuntime(Runtime):
    """Starts the jobs that need only the store and the SMTP server before connecting to Kafka:
    email due must go out even while the broker is down or the group still joins (the outcomes
    wait in the outbox until the relay can publish them)."""

    def __init__(self, *args: Any, independent: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.independent = list(independent)

    async def start(self) -> None:
        for job in self.independent:
            self._tasks.append(asyncio.create_task(job(), name=getattr(job, "__name__", "job")))
        await super().start()


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
    index: ScheduleIndex
    scheduler: DigestScheduler
    dispatcher: ReminderDispatcher
    leadership: Leadership
    unsubscriber: Unsubscriber


def build(settings: Settings, *, session_timeout_ms: int = 10_000, retry_base_delay: float = 1.0,
          clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> NotifierService:
    notifier = Notifier(settings.store)
    notifier.mail_from = settings.mail_from
    index = ScheduleIndex(notifier)
    leadership = Leadership(settings.store, SERVICE)
    tokens = UnsubscribeTokens(settings.unsubscribe_secret)
    broker = make_broker(settings.kafka, client_id=SERVICE)
    sink = InboxSink(SERVICE, notifier, notifier.handle, rejected=NotifierRejected)
    consumer = TrackedConsumer(
        broker, sink, [t.value for t in CONSUMES], settings.group_id,
        session_timeout_ms=session_timeout_ms, heartbeat_interval_ms=max(500, session_timeout_ms // 5),
        max_records=settings.kafka.max_poll_records,
    )
    relay = OutboxRelay(notifier, broker)
    mailer = SmtpMailer(settings.smtp)
    sender = MailSender(notifier, mailer, mail_from=settings.mail_from, base_url=settings.portal_base_url,
                        unsubscribe_base=settings.public_base_url, tokens=tokens, index=index,
                        base_delay=retry_base_delay, retry_for=timedelta(hours=settings.retry_hours), clock=clock)
    scheduler = DigestScheduler(notifier, index, mail_from=settings.mail_from)
    dispatcher = ReminderDispatcher(
        notifier, fact_watermark(lambda: getattr(consumer.subscriber, "consumer", None), [t.value for t in FACT_TOPICS])
    )
    unsubscriber = Unsubscriber(notifier, tokens)
    schedule_wake = asyncio.Event()

    async def sending() -> None:
        runtime.wake_on_write(sender.wake.set)
        await sender.run(leadership)

    async def dispatching() -> None:
        runtime.wake_on_write(dispatcher.wake.set)
        await dispatcher.run(leadership)

    async def scheduling() -> None:
        """Run the scheduler at each due time (the earliest next_due), and at least every minute."""
        while True:
            sleep = SCHEDULER_MAX_SLEEP
            if leadership.held:
                try:
                    result = await asyncio.to_thread(scheduler.run, clock())
                    if result.digests:
                        log.info(result.summary())
                        sender.wake.set()
                    earliest = await asyncio.to_thread(index.earliest_due)
                    if earliest is not None:
                        sleep = min(sleep, (earliest - clock()).total_seconds())
                except Exception:
                    log.exception("the digest scheduler failed; trying again in a minute")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(schedule_wake.wait(), timeout=max(1.0, sleep))
            schedule_wake.clear()

    runtime = NotifierRuntime(SERVICE, notifier, broker, [LeaderOnly(relay, leadership), LeaderOnly(index, leadership)],
                              background=[dispatching], independent=[sending, scheduling], leadership=leadership,
                              on_leading=[sender.wake.set, dispatcher.wake.set, schedule_wake.set])
    api = FastAPI(title="Partner portal: notifier", version="1.0.0")
    add_operational_routes(api, runtime)
    add_unsubscribe_routes(api, unsubscriber, clock)
    return NotifierService(settings, notifier, broker, consumer, relay, sender, mailer, runtime, api, index,
                           scheduler, dispatcher, leadership, unsubscriber)
