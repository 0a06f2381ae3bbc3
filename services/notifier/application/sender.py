"""Sends due deliveries in the order they became due, one at a time over a reused connection.

A delivery is recorded as due before it is sent (by whoever made it due) and as sent, failed
or deferred after, in the same transaction as the sender's position and the published
outcome. A crash between SMTP's acceptance and that transaction resends that one email once,
with the same Message-ID: one at a time is what bounds a crash to one duplicate.

What an SMTP answer means (DESIGN.md 3):
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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from eventsourcing.persistence import IntegrityError, Tracking

from contracts.envelope import make_event
from contracts.events import Topic
from events.leadership import Leadership
from events.metrics import EMAILS
from events.outbox import OutboundMessage
from services.notifier.adapters.smtp import DeliveryOutcome, DeliveryStatus, Mailer, send_with_retry
from services.notifier.application.digests import catch_up
from services.notifier.application.notifier import Notifier
from services.notifier.application.unsubscribe import UnsubscribeTokens
from services.notifier.domain.model import Delivery
from services.notifier.emails.models import ClientFigures, Money, Recipient
from services.notifier.emails.render import render_digest, render_reminder
from services.notifier.projections.schedule import ScheduleIndex

log = logging.getLogger("notifier.sender")
SOURCE = "/partner-portal/notifier"
SERVER_WIDE_CODES = (421,)  # "service not available, closing transmission channel"


def figures(data: dict[str, Any]) -> ClientFigures:
    wallet = data.get("wallet_balance")
    return ClientFigures(
        client_id=data["client_id"], name=data["name"],
        wallet_balance=Money(wallet["amount"], wallet["currency"]) if wallet else None,
        missing_receipts=data["missing_receipts"], ready_to_export=data["ready_to_export"],
    )


def render(delivery: Delivery, *, mail_from: str, base_url: str, unsubscribe_base: str,
           tokens: UnsubscribeTokens) -> EmailMessage:
    content = delivery.content
    recipient = Recipient(**content["recipient"])
    if delivery.kind == "reminder":
        message = render_reminder(
            recipient=recipient, sender_name=content["sender_name"], client=figures(content["client"]),
            tasks=content["tasks"], comment=content["comment"], reminder_id=content["reminder_id"],
            mail_from=mail_from, base_url=base_url, reply_to=content.get("reply_to"),
        )
    else:
        partner, user = delivery.partner_id, delivery.user_id
        message = render_digest(
            recipient=recipient, clients=[figures(c) for c in content["clients"]],
            due_at=datetime.fromisoformat(content["due_at"]), mail_from=mail_from, base_url=base_url,
            unsubscribe_url=f"{unsubscribe_base}/unsubscribe/{tokens.for_digest(partner, user, delivery.message_id)}",
            client_unsubscribe_urls={
                c["client_id"]: f"{unsubscribe_base}/unsubscribe/{tokens.for_client(partner, user, c['client_id'])}"
                for c in content["clients"]
            },
            partner_id=partner,
        )
    # The id recorded when the delivery became due is the id, whatever MAIL_FROM says today.
    del message["Message-ID"]
    message["Message-ID"] = delivery.message_id
    return message


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
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
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
        while True:
            start = await asyncio.to_thread(self.position)
            batch = await asyncio.to_thread(
                self.notifier.recorder.select_notifications,
                start=start, limit=100, topics=[Delivery.Due.TOPIC], inclusive_of_start=False,
            )
            if not batch:
                return report
            for notification in batch:
                delivery: Delivery = await asyncio.to_thread(self.notifier.repository.get, notification.originator_id)
                if delivery.state != "due":
                    await asyncio.to_thread(self._advance, notification.id)
                    continue
                report.add(await self._deliver(delivery, notification.id))
                if report.outage:
                    return report

    async def retry_deferred(self) -> SendReport:
        """Try again the deferred deliveries whose time has come."""
        report = SendReport()
        if self.index is None:
            return report
        await asyncio.to_thread(catch_up, self.index)
        for delivery_id in await asyncio.to_thread(self.index.retries_due, self.clock()):
            delivery: Delivery = await asyncio.to_thread(self.notifier.repository.get, delivery_id)
            if delivery.state != "deferred" or (delivery.retry_at and delivery.retry_at > self.clock()):
                continue
            report.add(await self._deliver(delivery, None))
            if report.outage:
                break
        return report

    async def send_all(self) -> SendReport:
        report = await self.send_pending()
        if not report.outage:
            report.add(await self.retry_deferred())
        return report

    # --- one delivery ---------------------------------------------------------------------------

    async def _deliver(self, delivery: Delivery, position: int | None) -> SendReport:
        message = render(delivery, mail_from=self.mail_from, base_url=self.base_url,
                         unsubscribe_base=self.unsubscribe_base, tokens=self.tokens)
        outcome = await send_with_retry(self.mailer, message, attempts=self.attempts,
                                        base_delay=self.base_delay, max_delay=self.max_delay)
        if outcome.attempts > 1:
            EMAILS.labels("notifier", delivery.kind, "retried").inc(outcome.attempts - 1)
        if outcome.status is DeliveryStatus.GAVE_UP and (outcome.code is None or outcome.code in SERVER_WIDE_CODES):
            log.warning("SMTP server unavailable (%s %s); %s stays due", outcome.code or "", outcome.reason,
                        delivery.message_id)
            return SendReport(outage=True, reason=f"{outcome.code or ''} {outcome.reason or ''}".strip())
        report, out = self._settle(delivery, outcome)
        tracking = Tracking(self.name, position) if position is not None else None
        try:
            await asyncio.to_thread(self.notifier.record, delivery, *out, tracking=tracking)
        except IntegrityError:
            # Only one sender runs at a time (Leadership); a lost lock mid-send lands here.
            log.warning("%s was settled by another sender", delivery.message_id)
        return report

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
                  "client_ids": delivery.client_ids, **data},
        )
        return report, [OutboundMessage.of(Topic.NOTIFICATION_DELIVERIES.value, event_)]

    def _advance(self, position: int) -> None:
        with contextlib.suppress(IntegrityError):  # recorded already
            self.notifier.record(tracking=Tracking(self.name, position))

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
