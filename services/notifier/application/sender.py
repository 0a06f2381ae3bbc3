"""Sends due deliveries in the order they became due, one after another over a reused connection.

A delivery is recorded as due before it is sent (by whoever made it due) and as sent, failed
or deferred after, in the same transaction as the sender's position and the published
outcome. A crash between SMTP's acceptance and that transaction resends that one email once,
with the same Message-ID.

The emails go out as a pipeline, without giving up that bound:
- the deliveries due are loaded a page at a time (one query), the next page while this one
  is sent;
- the next email is rendered while the current one is on the wire (rendering writes
  nothing);
- an email's outcome is recorded while the next email's envelope (MAIL FROM, RCPT TO) goes
  out, and the next email's DATA waits until that record is durable. So at any instant at
  most one email has been accepted by the server without its outcome recorded, and a crash
  (SIGKILL at any point) resends at most that one: at most one duplicate per crash, as when
  everything was strictly one at a time. Records are written in order, one transaction each.

What an SMTP answer means:
- 2xx: sent; `notification.email_sent.v1` is published.
- 5xx (or a message the server will never take): failed, recorded, `email_failed` published.
- No answer at all (refused, reset, timed out) or 421 (the server is closing the service):
  an outage, not this message's fault. The delivery stays due and sending pauses with
  jittered exponential backoff; after the outage everything goes out once, in order.
- Another 4xx after the quick retries (mailbox busy or full, greylisting): this message is
  deferred and retried later with backoff while the others go on; it fails for good (and
  `email_failed` is published) when still refused `retry_for` after it became due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any, cast
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Tracking

from contracts.envelope import make_event
from contracts.events import Topic
from events import tracing
from events.leadership import Leadership
from events.metrics import EMAILS
from events.outbox import OutboundMessage
from services.notifier.application.digests import catch_up
from services.notifier.application.notifier import Notifier
from services.notifier.application.ports import Clock, Mailer
from services.notifier.application.retry import DeliveryOutcome, DeliveryStatus, send_with_retry
from services.notifier.application.unsubscribe import UnsubscribeTokens
from services.notifier.domain.model import Delivery
from services.notifier.emails.mime import WireEmail
from services.notifier.emails.models import ClientFigures, Money, Recipient
from services.notifier.emails.render import compose_digest, compose_reminder
from services.notifier.projections.schedule import ScheduleIndex

log = logging.getLogger("notifier.sender")
SOURCE = "/partner-portal/notifier"
SERVER_WIDE_CODES = (421,)  # "service not available, closing transmission channel"
PAGE = 200  # due deliveries loaded per query


def figures(data: dict[str, Any]) -> ClientFigures:
    wallet = data.get("wallet_balance")
    return ClientFigures(
        client_id=data["client_id"], name=data["name"],
        wallet_balance=Money(wallet["amount"], wallet["currency"]) if wallet else None,
        missing_receipts=data["missing_receipts"], ready_to_export=data["ready_to_export"],
    )


def compose(delivery: Delivery, *, mail_from: str, base_url: str, unsubscribe_base: str,
            tokens: UnsubscribeTokens) -> WireEmail:
    """The delivery's email, ready to send, under the Message-ID recorded when it became due
    (whatever MAIL_FROM says today)."""
    content = delivery.content
    recipient = Recipient(**content["recipient"])
    if delivery.kind == "reminder":
        return compose_reminder(
            recipient=recipient, sender_name=content["sender_name"], client=figures(content["client"]),
            tasks=content["tasks"], comment=content["comment"], reminder_id=content["reminder_id"],
            mail_from=mail_from, base_url=base_url, reply_to=content.get("reply_to"),
            message_id=delivery.message_id,
        )
    partner, user = delivery.partner_id, delivery.user_id
    due_at = datetime.fromisoformat(content["due_at"])  # the links speak for the choices made before it
    links = f"{unsubscribe_base}/unsubscribe"
    return compose_digest(
        recipient=recipient, clients=[figures(c) for c in content["clients"]],
        due_at=due_at, mail_from=mail_from, base_url=base_url,
        unsubscribe_url=f"{links}/{tokens.for_digest(partner, user, delivery.message_id, due_at)}",
        client_unsubscribe_urls={
            c["client_id"]: f"{links}/{tokens.for_client(partner, user, c['client_id'], due_at)}"
            for c in content["clients"]
        },
        partner_id=partner, message_id=delivery.message_id,
    )


def render(delivery: Delivery, *, mail_from: str, base_url: str, unsubscribe_base: str,
           tokens: UnsubscribeTokens) -> EmailMessage:
    """The delivery's email as a receiver reads it (`digests preview`)."""
    return compose(delivery, mail_from=mail_from, base_url=base_url, unsubscribe_base=unsubscribe_base,
                   tokens=tokens).message()


class SettledElsewhere(Exception):
    """Another sender recorded this delivery first: two processes are sending (a leadership
    lost mid-pass, e.g. when the database restarted). This pass stops before its next DATA,
    so the race costs at most the one email both sent."""


@dataclass
class SendReport:
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    outage: bool = False
    reason: str = ""

    def add(self, other: SendReport) -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.deferred += other.deferred
        self.outage = self.outage or other.outage
        self.reason = self.reason or other.reason

    def summary(self) -> str:
        text = f"{self.sent} sent, {self.failed} failed, {self.deferred} deferred"
        return text + (f"; the SMTP server is unavailable ({self.reason}): the rest stays due" if self.outage else "")


class MailSender:
    name = "mail:sender"

    def __init__(self, notifier: Notifier, mailer: Mailer, *, mail_from: str, base_url: str,
                 unsubscribe_base: str, tokens: UnsubscribeTokens, index: ScheduleIndex | None = None,
                 attempts: int = 5, base_delay: float = 1.0, max_delay: float = 60.0,
                 outage_delay: float = 1.0, max_outage_delay: float = 60.0,
                 defer_delay: timedelta = timedelta(minutes=1), max_defer_delay: timedelta = timedelta(hours=1),
                 retry_for: timedelta = timedelta(hours=24),
                 clock: Clock = lambda: datetime.now(UTC)) -> None:
        self.notifier = notifier
        self.mailer = mailer
        self.mail_from = mail_from
        self.base_url = base_url
        self.unsubscribe_base = unsubscribe_base
        self.tokens = tokens
        self.index = index
        self.attempts, self.base_delay, self.max_delay = attempts, base_delay, max_delay
        self.outage_delay, self.max_outage_delay = outage_delay, max_outage_delay
        self.defer_delay, self.max_defer_delay, self.retry_for = defer_delay, max_defer_delay, retry_for
        self.clock = clock
        self.wake = asyncio.Event()
        self._stopping = False

    def position(self) -> int:
        return self.notifier.tracked(self.name) or 0

    # --- passes ---------------------------------------------------------------------------------

    async def send_pending(self) -> SendReport:
        """Send every delivery that became due since the position, in order; stop at an outage."""
        report = SendReport()
        line = _SendingLine(self, report)
        position = await asyncio.to_thread(self.position)
        upcoming = asyncio.ensure_future(asyncio.to_thread(self._due_page, position))
        try:
            while (page := await upcoming) is not None:
                due, last = page
                upcoming = asyncio.ensure_future(asyncio.to_thread(self._due_page, last))
                if not await line.send(due):
                    break  # an outage: the rest stays due
                if not due or due[-1][1] != last:
                    line.advance(last)  # the page ended with deliveries that were not due any more
        finally:
            _discard(upcoming)
            await line.drain()
        return report

    def _due_page(self, after: int) -> tuple[list[tuple[Delivery, int]], int] | None:
        """The deliveries still due among the next page of `Delivery.Due` notifications after
        `after` (loaded in one query), with their positions, and the page's last position."""
        batch = self.notifier.recorder.select_notifications(
            start=after, limit=PAGE, topics=[Delivery.Due.TOPIC], inclusive_of_start=False,
        )
        if not batch:
            return None
        ids = [cast(UUID, n.originator_id) for n in batch]  # the recorder gives UUIDs
        loaded = self.notifier.load(ids)
        due = [(d, n.id) for i, n in zip(ids, batch, strict=True)
               if (d := loaded.get(i)) is not None and d.state == "due"]
        return due, batch[-1].id

    async def retry_deferred(self) -> SendReport:
        """Try again the deferred deliveries whose time has come."""
        report = SendReport()
        if self.index is None:
            return report
        await asyncio.to_thread(catch_up, self.index)
        ids = await asyncio.to_thread(self.index.retries_due, self.clock())
        loaded: dict[UUID, Delivery] = await asyncio.to_thread(self.notifier.load, ids)
        now = self.clock()
        ready: list[tuple[Delivery, int | None]] = [
            (d, None) for i in ids
            if (d := loaded.get(i)) is not None and d.state == "deferred" and not (d.retry_at and d.retry_at > now)
        ]
        line = _SendingLine(self, report)
        try:
            await line.send(ready)
        finally:
            await line.drain()
        return report

    async def send_all(self) -> SendReport:
        report = await self.send_pending()
        if not report.outage:
            report.add(await self.retry_deferred())
        return report

    # --- one delivery ---------------------------------------------------------------------------

    def _compose(self, delivery: Delivery) -> WireEmail:
        return compose(delivery, mail_from=self.mail_from, base_url=self.base_url,
                       unsubscribe_base=self.unsubscribe_base, tokens=self.tokens)

    async def _send(self, email: WireEmail, before_data: Callable[[], Any]) -> DeliveryOutcome:
        return await send_with_retry(self.mailer, email, before_data=before_data, attempts=self.attempts,
                                     base_delay=self.base_delay, max_delay=self.max_delay)

    def _store(self, delivery: Delivery | None, messages: Sequence[OutboundMessage], position: int | None) -> None:
        """One transaction: the delivery's outcome, what it publishes and the sender's position."""
        tracking = Tracking(self.name, position) if position is not None else None
        try:
            self.notifier.record(*([delivery] if delivery is not None else []), *messages, tracking=tracking)
        except IntegrityError:
            if delivery is not None:
                # Only one sender runs at a time (Leadership); a lost lock mid-send lands here.
                log.warning("%s was settled by another sender; this pass stops", delivery.message_id)
                raise SettledElsewhere(delivery.message_id) from None
            # else: a position recorded already

    def _settle(self, delivery: Delivery, outcome: DeliveryOutcome) -> tuple[SendReport, list[OutboundMessage]]:
        now = self.clock()
        attempts = delivery.attempts + outcome.attempts
        data: dict[str, Any]
        if outcome.sent:
            delivery.sent(attempts)
            EMAILS.labels("notifier", delivery.kind, "sent").inc()
            type_, data, report = "notification.email_sent.v1", {"sent_at": now.isoformat()}, SendReport(sent=1)
        elif outcome.status is DeliveryStatus.GAVE_UP and now - delivery.created_on < self.retry_for:
            delay = min(self.max_defer_delay, self.defer_delay * 2 ** min(delivery.deferrals, 20))
            retry_at = now + delay * random.uniform(0.5, 1.0)  # jitter: deferred mail does not come back in step
            delivery.deferred(attempts, outcome.code, outcome.reason or "", retry_at)
            EMAILS.labels("notifier", delivery.kind, "deferred").inc()
            log.info("email %s to %s deferred until %s: %s %s", delivery.message_id, delivery.user_id,
                     retry_at.isoformat(), outcome.code, outcome.reason)
            return SendReport(deferred=1), []
        else:
            reason = outcome.reason or ""
            if outcome.status is DeliveryStatus.GAVE_UP:
                reason = f"still refused after {self.retry_for}: {reason}"
            delivery.failed(attempts, outcome.code, reason)
            EMAILS.labels("notifier", delivery.kind, "failed").inc()
            log.warning("email %s to %s failed: %s %s", delivery.message_id, delivery.user_id, outcome.code, reason)
            type_, data, report = "notification.email_failed.v1", {"code": outcome.code, "reason": reason}, SendReport(
                failed=1)
        event_ = make_event(
            id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{type_}/{delivery.message_id}")), source=SOURCE, type=type_,
            subject=delivery.user_id, partnerid=delivery.partner_id, time=now,
            data={"message_id": delivery.message_id, "kind": delivery.kind, "user_id": delivery.user_id,
                  "client_ids": delivery.client_ids, **_reminder_of(delivery), **data},
        )
        return report, [OutboundMessage.of(Topic.NOTIFICATION_DELIVERIES.value, event_)]

    # --- running --------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping = True
        self.wake.set()

    async def run(self, leadership: Leadership | None = None, interval: float = 1.0) -> None:
        """Send while this process leads; pause with backoff while the SMTP server is away."""
        pause = 0.0
        while not self._stopping:
            wait = interval
            if leadership is None or leadership.held:
                try:
                    report = await self.send_all()
                    if report.outage:
                        pause = min(self.max_outage_delay, max(pause * 2, self.outage_delay))
                        wait = pause * random.uniform(0.5, 1.0)
                    else:
                        pause = 0.0
                except SettledElsewhere:
                    pass  # the next turn asks again whether this process leads
                except Exception:
                    pause = min(self.max_outage_delay, max(pause * 2, self.outage_delay))
                    wait = pause
                    log.exception("sending failed; retrying in %.1fs", wait)
            if pause:
                await asyncio.sleep(wait)  # new deliveries must not cut an outage's backoff short
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=wait)
            self.wake.clear()


class _SendingLine:
    """Sends deliveries in order over the sender's mailer, as a pipeline (see the module's
    docstring): the next email is rendered while one is on the wire, and each outcome is
    recorded while the next envelope goes out, its DATA held back until that record is durable.

    Records run one after another (each waits for the one before): positions are recorded in
    order, and every record is in the store, or has failed loudly, once `drain` returns.
    """

    def __init__(self, sender: MailSender, report: SendReport) -> None:
        self.sender = sender
        self.report = report
        self._recording: asyncio.Task[None] | None = None  # the latest record

    async def send(self, deliveries: Sequence[tuple[Delivery, int | None]]) -> bool:
        """Send these (with the position each settles, if any) in order; False at an outage,
        which leaves that delivery and the ones after it due."""
        sender = self.sender
        tracer = tracing.tracer(sender.notifier.name)  # once per pass: None when not tracing
        upcoming = self._render(deliveries[0][0]) if deliveries else None
        for n, (delivery, position) in enumerate(deliveries):
            if isinstance(upcoming, Exception):
                raise upcoming  # once the email before it is settled
            assert upcoming is not None
            with _email_span(tracer, delivery) as span:
                sending = asyncio.ensure_future(sender._send(upcoming, self.recorded))
                try:
                    if n + 1 < len(deliveries):
                        # Once the task waits for the server's answer to MAIL FROM, render the next
                        # email, here rather than in a thread: the loop would wait for the GIL anyway.
                        await asyncio.sleep(0)
                        upcoming = self._render(deliveries[n + 1][0])
                    outcome = await sending
                finally:
                    _discard(sending)  # cancelled, say: nothing more of this email is sent
                if span is not None:
                    span.set_attributes({"smtp.attempts": outcome.attempts, "smtp.status": outcome.status.name,
                                         "smtp.code": outcome.code or 0})
                if outcome.attempts > 1:
                    EMAILS.labels("notifier", delivery.kind, "retried").inc(outcome.attempts - 1)
                if outcome.status is DeliveryStatus.GAVE_UP and (
                        outcome.code is None or outcome.code in SERVER_WIDE_CODES):
                    log.warning("SMTP server unavailable (%s %s); %s stays due", outcome.code or "", outcome.reason,
                                delivery.message_id)
                    self.report.add(SendReport(outage=True,
                                               reason=f"{outcome.code or ''} {outcome.reason or ''}".strip()))
                    return False
                settled, messages = sender._settle(delivery, outcome)  # its outcome event joins the trace
            self.report.add(settled)
            self._record(delivery, messages, position)
        return True

    def advance(self, position: int) -> None:
        """Record the sender's position alone (after deliveries that were not due any more)."""
        self._record(None, [], position)

    async def recorded(self) -> None:
        """Wait until every outcome so far is durable (raises what a failed record raised)."""
        if self._recording is not None:
            await self._recording

    async def drain(self) -> None:
        """Sending stops: wait for the records in flight, so every outcome the server has seen
        is in the store (or its failure raised) before the caller goes on or exits."""
        await self.recorded()

    def _render(self, delivery: Delivery) -> WireEmail | Exception:
        # An email that cannot be rendered stops the pass (as a record that fails does), but
        # only after the email before it is settled.
        try:
            return self.sender._compose(delivery)
        except Exception as error:
            return error

    def _record(self, delivery: Delivery | None, messages: Sequence[OutboundMessage], position: int | None) -> None:
        previous = self._recording

        async def record() -> None:
            if previous is not None:
                await previous  # in order; a failed record fails every later one
            await asyncio.to_thread(self.sender._store, delivery, messages, position)

        self._recording = asyncio.ensure_future(record())


@contextlib.contextmanager
def _email_span(tracer: tracing.Tracer | None, delivery: Delivery) -> Iterator[tracing.Span | None]:
    """One email's sending, current while it lasts, in the trace its delivery was dispatched
    in (a reminder's: the admin's request); nothing when the notifier does not trace."""
    if tracer is None:
        yield None
        return
    trace = delivery.content.get("trace") or {}
    parent = tracing.context_of(trace.get("traceparent"), trace.get("tracestate"))
    with tracer.start_as_current_span(
            f"send email {delivery.kind}", context=tracing.span_context(parent),
            attributes={"portal.message_id": delivery.message_id, "portal.user_id": delivery.user_id}) as span:
        yield span


def _discard(future: asyncio.Future[Any]) -> None:
    """Drop work that is not needed any more (cancel it, or ignore what it raised), without an
    "exception never retrieved" warning."""
    if future.done():
        if not future.cancelled():
            future.exception()
    else:
        future.cancel()


def _reminder_of(delivery: Delivery) -> dict[str, Any]:
    """A reminder's outcome names its reminder, so the client directory's history can settle it."""
    reminder_id = delivery.content.get("reminder_id") if delivery.kind == "reminder" else None
    return {"reminder_id": reminder_id} if reminder_id else {}
