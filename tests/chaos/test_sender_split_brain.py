"""Found by the chaos run (seed 30, 30 minutes on PostgreSQL): after a database restart the
notifier's old leader, which had lost its advisory lock, went on sending the page of due
emails it had loaded while the new leader sent the same ones: 143 duplicates over 19 restarts.
A sender whose record finds the delivery settled by another sender now stops its pass."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from services.notifier.application.sender import SettledElsewhere
from tests.notifier.test_sender import FIRM, USERS, remind_all, sender
from tests.notifier.test_smtp import Handler, smtp_server
from tests.notifier.world import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    made = World(f"sqlite:///{tmp_path / 'notifier.db'}")
    made.member(FIRM, "ada", role="admin", name="Ada Admin")
    for user in USERS:
        made.member(FIRM, user)
    made.client(FIRM, "acme", name="Acme ApS", accountants=USERS)
    return made


async def test_a_sender_that_lost_the_race_stops_after_one_duplicate(world: World) -> None:
    await remind_all(world)  # one due email per accountant
    handler = Handler()
    async with smtp_server(handler) as server:
        stale, leader = sender(world, server.port), sender(world, server.port)
        load = stale._due_page

        def loaded_then_overtaken(after: int) -> Any:
            page = load(after)
            if page and page[0]:
                # The new leader sends and records everything while the old one holds its page.
                asyncio.run(leader.send_all())
            return page

        stale._due_page = loaded_then_overtaken  # type: ignore[method-assign]
        with pytest.raises(SettledElsewhere):  # the service's loop takes it as "not leading now"
            await stale.send_all()
    sent = Counter(m.message["Message-ID"] for m in handler.messages)
    assert len(sent) == len(USERS), "everybody got their reminder"
    # Before the fix the old leader went on and sent its whole page again.
    assert sum(n - 1 for n in sent.values()) <= 1, sent
    assert {d.state for d in world.deliveries()} == {"sent"}
