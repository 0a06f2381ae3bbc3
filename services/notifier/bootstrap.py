"""The notifier's composition root: every object the service, the CLI and the tests use is
built here, from `Settings`, with the adapters chosen here (or fakes given by a test).

`bootstrap(settings)` returns a `NotifierService` whose parts are built on first use, so a
CLI command that only reads the store opens nothing else, and the service (`.api`,
`.runtime`) gets the whole graph. Every replica consumes and answers HTTP; only the replica
holding the leadership lock schedules, dispatches, sends, relays the outbox and keeps the
schedule index, so no email goes out once per replica.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from contracts.events import Topic
from events import tracing
from events.inbox import InboxSink
from events.kafka import TrackedConsumer, make_broker
from events.leadership import LeaderOnly, Leadership
from events.outbox import OutboxRelay
from events.runtime import Runtime, add_operational_routes
from services.notifier.adapters.http import add_unsubscribe_routes
from services.notifier.adapters.kafka_offsets import end_offsets, running_client
from services.notifier.adapters.smtp import SmtpMailer
from services.notifier.application.digests import DigestScheduler
from services.notifier.application.notifier import Notifier
from services.notifier.application.ports import Clock, Mailer
from services.notifier.application.reminders import ReminderDispatcher
from services.notifier.application.scheduling import ScheduleLoop
from services.notifier.application.sender import MailSender
from services.notifier.application.unsubscribe import Unsubscriber, UnsubscribeTokens
from services.notifier.config import Settings
from services.notifier.domain.model import Rejected
from services.notifier.projections.schedule import ScheduleIndex

SERVICE = "notifier"
CONSUMES = (Topic.PARTNER_MEMBERS, Topic.PARTNER_CLIENTS, Topic.CLIENT_METRICS, Topic.NOTIFICATIONS,
            Topic.CLIENT_DIRECTORY)
# What a reminder's recipients and figures depend on (everything but portal.notifications).
FACT_TOPICS = (Topic.PARTNER_MEMBERS, Topic.PARTNER_CLIENTS, Topic.CLIENT_METRICS, Topic.CLIENT_DIRECTORY)


def now_utc() -> datetime:
    return datetime.now(UTC)


def bootstrap(settings: Settings, *, mailer: Mailer | None = None, clock: Clock = now_utc,
              publisher: Any = None, session_timeout_ms: int | None = None,
              retry_base_delay: float = 1.0) -> NotifierService:
    """The notifier's objects. `mailer` (default: SMTP from the settings), `clock` and
    `publisher` (what the outbox relay publishes through; default: the Kafka broker) may be
    fakes; `session_timeout_ms` defaults to KAFKA_SESSION_TIMEOUT_MS."""
    tracing.configure(SERVICE, settings.tracing)  # before the parts that ask for the tracer
    return NotifierService(settings, mailer=mailer, clock=clock, publisher=publisher,
                           session_timeout_ms=session_timeout_ms or settings.kafka.session_timeout_ms,
                           retry_base_delay=retry_base_delay)


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


class NotifierService:
    """The notifier's object graph, each part built once, on first use (see `bootstrap`)."""

    def __init__(self, settings: Settings, *, mailer: Mailer | None, clock: Clock, publisher: Any,
                 session_timeout_ms: int, retry_base_delay: float) -> None:
        self.settings = settings
        self.clock = clock
        self._mailer, self._publisher = mailer, publisher
        self._session_timeout_ms = session_timeout_ms
        self._retry_base_delay = retry_base_delay

    # --- the store and what reads it -------------------------------------------------------------

    @cached_property
    def notifier(self) -> Notifier:
        return Notifier(self.settings.store)

    @cached_property
    def sink(self) -> InboxSink:
        return InboxSink(SERVICE, self.notifier, tracing.traced_handler(SERVICE, self.notifier.handle),
                         rejected=Rejected)

    @cached_property
    def index(self) -> ScheduleIndex:
        return ScheduleIndex(self.notifier)

    @cached_property
    def tokens(self) -> UnsubscribeTokens:
        return UnsubscribeTokens(self.settings.secret)

    @cached_property
    def scheduler(self) -> DigestScheduler:
        return DigestScheduler(self.notifier, self.index, mail_from=self.settings.mail_from)

    @cached_property
    def unsubscriber(self) -> Unsubscriber:
        return Unsubscriber(self.notifier, self.tokens)

    @cached_property
    def leadership(self) -> Leadership:
        return Leadership(self.settings.store, SERVICE)

    # --- sending ---------------------------------------------------------------------------------

    @cached_property
    def mailer(self) -> Mailer:
        return self._mailer if self._mailer is not None else SmtpMailer(self.settings.smtp)

    async def close_mailer(self) -> None:
        """QUIT the SMTP sessions this process opened (a command that exits)."""
        if isinstance(self.__dict__.get("mailer"), SmtpMailer):
            await self.mailer.close()  # type: ignore[attr-defined]

    @cached_property
    def sender(self) -> MailSender:
        settings = self.settings
        return MailSender(self.notifier, self.mailer, mail_from=settings.mail_from,
                          base_url=settings.portal_base_url, unsubscribe_base=settings.public_base_url,
                          tokens=self.tokens, index=self.index, base_delay=self._retry_base_delay,
                          retry_for=timedelta(hours=settings.retry_hours), clock=self.clock)

    @cached_property
    def schedule_loop(self) -> ScheduleLoop:
        loop = ScheduleLoop(self.scheduler, self.index, self.sender.wake.set, self.clock)
        self.index.on_preference = loop.wake.set
        return loop

    # --- Kafka -----------------------------------------------------------------------------------

    @cached_property
    def broker(self) -> KafkaBroker:
        return make_broker(self.settings.kafka, client_id=SERVICE)

    @cached_property
    def consumer(self) -> TrackedConsumer:
        timeout = self._session_timeout_ms
        return TrackedConsumer(self.broker, self.sink, [t.value for t in CONSUMES], self.settings.group_id,
                               session_timeout_ms=timeout, heartbeat_interval_ms=max(500, timeout // 5),
                               max_records=self.settings.kafka.max_poll_records)

    @cached_property
    def relay(self) -> OutboxRelay:
        return OutboxRelay(self.notifier, self._publisher if self._publisher is not None else self.broker)

    @cached_property
    def dispatcher(self) -> ReminderDispatcher:
        consumer = self.consumer
        watermark = end_offsets(lambda: running_client(consumer), [t.value for t in FACT_TOPICS])
        return ReminderDispatcher(self.notifier, watermark, mail_from=self.settings.mail_from)

    # --- the running service ---------------------------------------------------------------------

    @cached_property
    def runtime(self) -> Runtime:
        sender, dispatcher, leadership, loop = self.sender, self.dispatcher, self.leadership, self.schedule_loop

        async def sending() -> None:
            runtime.wake_on_write(sender.wake.set)
            await sender.run(leadership)

        async def dispatching() -> None:
            runtime.wake_on_write(dispatcher.wake.set)
            await dispatcher.run(leadership)

        async def scheduling() -> None:
            await loop.run(leadership)

        subscribed = self.consumer  # building it subscribes it on the broker, before the broker starts
        runtime = NotifierRuntime(
            SERVICE, self.notifier, self.broker,
            [LeaderOnly(self.relay, leadership), LeaderOnly(self.index, leadership)],
            background=[dispatching], independent=[sending, scheduling], leadership=leadership,
            on_leading=[sender.wake.set, dispatcher.wake.set, loop.wake.set],
        )
        assert subscribed.broker is self.broker
        return runtime

    @cached_property
    def api(self) -> FastAPI:
        api = FastAPI(title="Partner portal: notifier", version="1.0.0")
        add_operational_routes(api, self.runtime)
        add_unsubscribe_routes(api, self.unsubscriber, self.clock)
        return api
