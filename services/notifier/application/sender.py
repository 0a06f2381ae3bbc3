"""Sends due deliveries in the order they became due, one at a time over a reused connection.

A delivery is recorded as due before it is sent (by whoever made it due) and as sent or
failed after, in the same transaction as the sender's position. A crash between SMTP's
acceptance and that transaction resends that one email once, with the same Message-ID.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from eventsourcing.persistence import Tracking

from contracts.envelope import make_event
from contracts.events import Topic
from events.metrics import EMAILS
from events.outbox import OutboundMessage
from services.notifier.adapters.smtp import DeliveryStatus, Mailer, send_with_retry
from services.notifier.application.notifier import Notifier
from services.notifier.domain.model import Delivery
from services.notifier.emails.models import ClientFigures, Money, Recipient
from services.notifier.emails.render import render_digest, render_reminder

log = logging.getLogger("notifier.sender")
SOURCE = "/partner-portal/notifier"


def figures(data: dict[str, Any]) -> ClientFigures:
    wallet = data.get("wallet_balance")
    return ClientFigures(
        client_id=data["client_id"], name=data["name"],
        wallet_balance=Money(wallet["amount"], wallet["currency"]) if wallet else None,
        missing_receipts=data["missing_receipts"], ready_to_export=data["ready_to_export"],
    )


def render(delivery: Delivery, *, mail_from: str, base_url: str, unsubscribe_base: str) -> EmailMessage:
    content = delivery.content
    recipient = Recipient(**content["recipient"])
    if delivery.kind == "reminder":
        return render_reminder(
            recipient=recipient, sender_name=content["sender_name"], client=figures(content["client"]),
            tasks=content["tasks"], comment=content["comment"], reminder_id=content["reminder_id"],
            mail_from=mail_from, base_url=base_url, reply_to=content.get("reply_to"),
        )
    due_at = datetime.fromisoformat(content["due_at"])
    return render_digest(
        recipient=recipient, clients=[figures(c) for c in content["clients"]], due_at=due_at,
        mail_from=mail_from, base_url=base_url,
        unsubscribe_url=f"{unsubscribe_base}/unsubscribe/{content['unsubscribe_token']}",
        client_unsubscribe_urls={
            c["client_id"]: f"{unsubscribe_base}/unsubscribe/{t}"
            for c, t in zip(content["clients"], content.get("client_tokens", []), strict=False)
        },
    )


class MailSender:
    name = "mail:sender"

    def __init__(self, notifier: Notifier, mailer: Mailer, *, mail_from: str, base_url: str,
                 unsubscribe_base: str, attempts: int = 5, base_delay: float = 1.0, max_delay: float = 60.0,
                 outage_delay: float = 5.0) -> None:
        self.notifier = notifier
        self.mailer = mailer
        self.mail_from = mail_from
        self.base_url = base_url
        self.unsubscribe_base = unsubscribe_base
        self.attempts, self.base_delay, self.max_delay = attempts, base_delay, max_delay
        self.outage_delay = outage_delay
        self.wake = asyncio.Event()
        self._stopping = False

    def position(self) -> int:
        return self.notifier.tracked(self.name) or 0

    async def send_pending(self) -> int:
        """Send everything due now; returns how many deliveries ended (sent or failed)."""
        ended = 0
        while True:
            batch = await asyncio.to_thread(
                self.notifier.recorder.select_notifications,
                start=await asyncio.to_thread(self.position), limit=100,
                topics=[Delivery.Due.TOPIC], inclusive_of_start=False,
            )
            if not batch:
                return ended
            for notification in batch:
                delivery: Delivery = await asyncio.to_thread(self.notifier.repository.get, notification.originator_id)
                if delivery.state == "due":
                    if not await self._deliver(delivery, notification.id):
                        return ended  # the SMTP server is unreachable: try again later
                    ended += 1
                else:
                    await asyncio.to_thread(self.notifier.record, tracking=Tracking(self.name, notification.id))

    async def _deliver(self, delivery: Delivery, position: int) -> bool:
        message = render(delivery, mail_from=self.mail_from, base_url=self.base_url,
                         unsubscribe_base=self.unsubscribe_base)
        outcome = await send_with_retry(self.mailer, message, attempts=self.attempts,
                                        base_delay=self.base_delay, max_delay=self.max_delay)
        if outcome.status is DeliveryStatus.GAVE_UP and outcome.code is None:
            # No SMTP reply at all: the server is down, not this message's fault. Keep it due.
            log.warning("SMTP server unreachable (%s); %s stays due", outcome.reason, delivery.message_id)
            EMAILS.labels("notifier", delivery.kind, "retried").inc()
            return False
        if outcome.sent:
            delivery.sent(outcome.attempts)
            type_, data = "notification.email_sent.v1", {"sent_at": datetime.now(UTC).isoformat()}
        else:
            delivery.failed(outcome.attempts, outcome.code, outcome.reason or "")
            type_, data = "notification.email_failed.v1", {"code": outcome.code, "reason": outcome.reason or ""}
            log.warning("email %s to %s failed: %s %s", delivery.message_id, delivery.user_id,
                        outcome.code, outcome.reason)
        EMAILS.labels("notifier", delivery.kind, "sent" if outcome.sent else "failed").inc()
        if outcome.attempts > 1:
            EMAILS.labels("notifier", delivery.kind, "retried").inc(outcome.attempts - 1)
        event_ = make_event(
            id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{type_}/{delivery.message_id}")), source=SOURCE, type=type_,
            subject=delivery.user_id, partnerid=delivery.partner_id, time=datetime.now(UTC),
            data={"message_id": delivery.message_id, "kind": delivery.kind, "user_id": delivery.user_id,
                  "client_ids": delivery.client_ids, **data},
        )
        out = OutboundMessage.of(Topic.NOTIFICATION_DELIVERIES.value, event_)
        await asyncio.to_thread(self.notifier.record, delivery, out, tracking=Tracking(self.name, position))
        return True

    def stop(self) -> None:
        self._stopping = True
        self.wake.set()

    async def run(self, interval: float = 0.2) -> None:
        delay = interval
        while not self._stopping:
            try:
                await self.send_pending()
                delay = interval
            except Exception:
                log.exception("sending failed; retrying in %.1fs", delay)
                delay = min(max(delay * 2, 1.0), 30.0)
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=max(delay, self.outage_delay if delay > interval else delay))
            except TimeoutError:
                pass
            self.wake.clear()
