"""When the digest scheduler runs: at each due time (the earliest `next_due` of the schedule
index), and at least once a minute, while this process leads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from events.leadership import Leadership
from services.notifier.application.digests import DigestScheduler
from services.notifier.application.ports import Clock
from services.notifier.projections.schedule import ScheduleIndex

log = logging.getLogger("notifier.service")

MAX_SLEEP = 60.0  # a due time the index has not seen yet is found within a minute


class ScheduleLoop:
    def __init__(self, scheduler: DigestScheduler, index: ScheduleIndex, made: Callable[[], None],
                 clock: Clock, *, max_sleep: float = MAX_SLEEP) -> None:
        self.scheduler, self.index, self.made, self.clock = scheduler, index, made, clock
        self.max_sleep = max_sleep
        self.wake = asyncio.Event()

    async def once(self) -> float:
        """Make what is due now; returns how long to sleep before the next due time."""
        sleep = self.max_sleep
        try:
            result = await asyncio.to_thread(self.scheduler.run, self.clock())
            if result.digests:
                log.info(result.summary())
                self.made()
            earliest = await asyncio.to_thread(self.index.earliest_due)
            if earliest is not None:
                sleep = min(sleep, (earliest - self.clock()).total_seconds())
        except Exception:
            log.exception("the digest scheduler failed; trying again in a minute")
        return sleep

    async def run(self, leadership: Leadership) -> None:
        while True:
            sleep = await self.once() if leadership.held else self.max_sleep
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=max(1.0, sleep))
            self.wake.clear()
