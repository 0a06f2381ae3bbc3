"""`python -m tests.chaos.planted <service module> [args]`: the service with a bug planted, to
prove the chaos checker catches one. Which bug: CHAOS_PLANTED_BUG (set only by the chaos runner).

- `skip-inbox`: the inbox forgets the ids it received in earlier fetches, so an event delivered
  again at a new offset is applied again (its second inbox row is quietly not written, as a
  careless "insert if absent" would do). Only a re-sent id shows it: the Jepsen-style checker
  must see that in the tabs.
"""

from __future__ import annotations

import os
import runpy
import sys
from typing import Any


def plant_skip_inbox() -> None:
    from events import inbox

    def unit_of_work(self: Any, events: Any) -> tuple[Any, set[str]]:
        uow = inbox.UnitOfWork(self.app)
        if self.keys is not None:
            uow.prefetch(key for inbound in events for key in self.keys(inbound))
        return uow, set()  # the bug: nothing counts as received before

    original_receive = inbox.UnitOfWork.receive

    def receive(self: Any, entry: Any) -> None:
        if not self.app.inbox.inbox_received([entry.event_id]):
            original_receive(self, entry)

    inbox.InboxSink._unit_of_work = unit_of_work  # type: ignore[method-assign]
    inbox.UnitOfWork.receive = receive  # type: ignore[method-assign]


BUGS = {"skip-inbox": plant_skip_inbox}


def main() -> None:
    bug = os.environ.get("CHAOS_PLANTED_BUG", "")
    if bug:
        BUGS[bug]()
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
