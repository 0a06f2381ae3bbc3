"""Dispatching reminders: the facts first, then the recipients.

Kafka orders records within a partition, not across topics: when the notifier catches up
(a first start, or after downtime) a reminder on portal.notifications may be read before
the assignment or the member it depends on, which the admin saw in the portal before
clicking. So a reminder is recorded as pending when it arrives, and the dispatcher chooses
its recipients only once every record that was on the fact topics when it looked (the
end offsets, asked of the broker) has been applied to the store: "the accountants assigned
when the reminder is processed" then means what the admin saw, or newer.

Dispatching makes one due Delivery per recipient, marks the reminder dispatched (or
dropped, with the reason) and moves the dispatcher's position, in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Tracking

from events.leadership import Leadership
from services.notifier.application.notifier import Notifier
from services.notifier.application.ports import FactWatermark
from services.notifier.domain.model import Reminder

log = logging.getLogger("notifier.reminders")


class ReminderDispatcher:
    name = "reminders:dispatch"

    def __init__(self, notifier: Notifier, watermark: FactWatermark | None, *, mail_from: str,
                 settle: float = 1.0, max_wait: float = 120.0, poll: float = 0.1) -> None:
        self.notifier = notifier
        self.watermark = watermark
        self.mail_from = mail_from
        self.settle, self.max_wait, self.poll = settle, max_wait, poll
        self.wake = asyncio.Event()
        self._stopping = False

    def position(self) -> int:
        return self.notifier.tracked(self.name) or 0

    async def dispatch_pending(self) -> int:
        """Dispatch every reminder recorded since the position; returns how many."""
        done = 0
        while True:
            start = await asyncio.to_thread(self.position)
            batch = await asyncio.to_thread(
                self.notifier.recorder.select_notifications,
                start=start, limit=100, topics=[Reminder.Requested.TOPIC], inclusive_of_start=False,
            )
            if not batch:
                return done
            await self.facts_applied()  # once for the batch: it covers every reminder in it
            for notification in batch:
                await asyncio.to_thread(self._dispatch, UUID(str(notification.originator_id)), notification.id)
                done += 1

    async def facts_applied(self) -> None:
        """Wait until the store holds every fact record that is on the broker now (bounded)."""
        marks = None
        if self.watermark is not None:
            try:
                marks = await self.watermark()
            except Exception as error:
                log.warning("cannot read the fact topics' end offsets (%s)", error)
        if marks is None:
            await asyncio.sleep(self.settle)  # no broker to ask: give the other topics a moment
            return
        deadline = time.monotonic() + self.max_wait
        while True:
            behind = await asyncio.to_thread(self._behind, marks)
            if not behind:
                return
            if time.monotonic() > deadline:
                log.warning("dispatching reminders although %s are not applied after %.0fs",
                            ", ".join(sorted(behind)), self.max_wait)
                return
            await asyncio.sleep(self.poll)

    def _behind(self, marks: dict[str, int]) -> list[str]:
        behind = []
        for name, last in marks.items():
            applied = self.notifier.tracked(name)
            if applied is None or applied < last:
                behind.append(name)
        return behind

    def _dispatch(self, reminder_id: UUID, position: int) -> None:
        for _ in range(5):
            reminder: Reminder = self.notifier.repository.get(reminder_id)
            tracking = Tracking(self.name, position)
            if reminder.state != "pending":
                with contextlib.suppress(IntegrityError):
                    self.notifier.record(tracking=tracking)
                return
            deliveries = self.notifier.dispatch(reminder, mail_from=self.mail_from)
            try:
                self.notifier.record(reminder, *deliveries, tracking=tracking)
            except IntegrityError:
                continue  # another dispatcher got there first: look again
            if reminder.state == "dropped":
                log.warning("reminder %s of %s dropped: %s", reminder.reminder_id, reminder.partner_id,
                            reminder.reason)
            return

    def stop(self) -> None:
        self._stopping = True
        self.wake.set()

    async def run(self, leadership: Leadership | None = None, interval: float = 1.0) -> None:
        delay = interval
        while not self._stopping:
            if leadership is None or leadership.held:
                try:
                    await self.dispatch_pending()
                    delay = interval
                except Exception:
                    log.exception("dispatching reminders failed; retrying in %.1fs", delay)
                    delay = min(max(delay * 2, 1.0), 30.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=delay)
            self.wake.clear()
