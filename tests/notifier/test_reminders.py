"""Reminders at the service layer: recorded pending, dispatched to the accountants assigned at
dispatch time, once; the dispatcher waits for the facts published before them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from events.kafka import tracking_name
from services.notifier.application.reminders import ReminderDispatcher
from services.notifier.domain.model import Reminder, reminder_key
from services.notifier.emails.render import reminder_message_id
from tests.notifier.world import MAIL_FROM, World

FIRM = "firm-r"


@pytest.fixture
def world(tmp_path: Path) -> World:
    made = World(f"sqlite:///{tmp_path / 'notifier.db'}")
    made.member(FIRM, "ada", role="admin", name="Ada Admin")
    made.member(FIRM, "chloe", locale="fr")
    made.member(FIRM, "otto")
    made.member(FIRM, "rita")
    made.client(FIRM, "acme", name="Acme ApS", accountants=("chloe", "rita"))
    made.figures(FIRM, "acme", "10.00", missing=4, ready=2)
    return made


def dispatcher(world: World) -> ReminderDispatcher:
    return ReminderDispatcher(world.notifier, None, mail_from=MAIL_FROM, settle=0.0)


def reminder(world: World, reminder_id: str) -> Reminder:
    found: Reminder = world.notifier.repository.get(reminder_key(FIRM, reminder_id))
    return found


async def test_a_reminder_goes_to_the_accountants_assigned_when_it_is_dispatched(world: World) -> None:
    rid = world.remind(FIRM, "acme", "ada", ("missing_receipts", "wallet_balance"), "Merci !")
    assert reminder(world, rid).state == "pending" and world.deliveries() == []
    # Facts applied after the reminder arrived, before it was dispatched, count.
    world.assign(FIRM, "acme", "otto")
    world.publish("partner.member.removed.v1", FIRM, {"user_id": "rita"})
    assert await dispatcher(world).dispatch_pending() == 1
    deliveries = world.deliveries("reminder")
    assert sorted(d.user_id for d in deliveries) == ["chloe", "otto"]
    chloe = next(d for d in deliveries if d.user_id == "chloe")
    assert chloe.message_id == reminder_message_id(rid, "chloe", MAIL_FROM)
    assert chloe.content["sender_name"] == "Ada Admin" and chloe.content["comment"] == "Merci !"
    assert chloe.content["tasks"] == ["missing_receipts", "wallet_balance"]
    assert chloe.content["client"]["missing_receipts"] == 4
    assert chloe.content["recipient"]["locale"] == "fr"
    assert reminder(world, rid).state == "dispatched"
    assert reminder(world, rid).recipients == ["chloe", "otto"]


async def test_dispatching_again_or_receiving_the_reminder_again_sends_nothing_twice(world: World) -> None:
    rid = world.remind(FIRM, "acme", "ada")
    assert await dispatcher(world).dispatch_pending() == 1
    world.remind(FIRM, "acme", "ada", reminder_id=rid)  # a new event id, the same reminder
    assert await dispatcher(world).dispatch_pending() == 0
    assert len(world.deliveries()) == 2
    rejected = [r for r in world.received() if r.outcome == "rejected"]
    assert [r.reason for r in rejected] == [f"reminder {rid} was already processed"]


@pytest.mark.parametrize(("by", "client", "reason"), [
    ("chloe", "acme", "the requester is not an admin of the firm"),
    ("nobody", "acme", "the requester is not an admin of the firm"),
    ("ada", "unknown", "the client is not a client of the firm"),
])
async def test_a_reminder_that_cannot_be_sent_is_dropped_with_the_reason(
    world: World, by: str, client: str, reason: str
) -> None:
    rid = world.remind(FIRM, client, by)
    await dispatcher(world).dispatch_pending()
    assert world.deliveries() == []
    assert (reminder(world, rid).state, reminder(world, rid).reason) == ("dropped", reason)


async def test_a_reminder_requested_days_ago_is_a_replay_and_is_not_sent(world: World) -> None:
    # A store rebuilt from the topics reads every reminder ever requested: none is sent again.
    rid = world.remind(FIRM, "acme", "ada", at=datetime.now(UTC) - timedelta(days=3))
    fresh = world.remind(FIRM, "acme", "ada", at=datetime.now(UTC) - timedelta(hours=1))
    await dispatcher(world).dispatch_pending()
    assert reminder(world, rid).state == "dropped" and "not sent" in reminder(world, rid).reason
    assert reminder(world, fresh).state == "dispatched"
    assert {d.content["reminder_id"] for d in world.deliveries()} == {fresh}


async def test_a_client_without_accountants_gets_a_dispatched_reminder_with_nobody(world: World) -> None:
    world.client(FIRM, "lonely", name="Lonely")
    rid = world.remind(FIRM, "lonely", "ada")
    await dispatcher(world).dispatch_pending()
    assert (reminder(world, rid).state, reminder(world, rid).recipients, world.deliveries()) == ("dispatched", [], [])


async def test_the_dispatcher_waits_until_the_facts_on_the_broker_are_applied(world: World) -> None:
    topic = "platform.partner-clients"
    behind = tracking_name(topic, 0)
    applied = world.notifier.tracked(behind)
    assert applied is not None
    marks = {behind: applied + 1}  # the broker holds one more record than the store applied

    async def watermark() -> dict[str, int]:
        return marks

    rid = world.remind(FIRM, "acme", "ada")
    waiting = asyncio.create_task(
        ReminderDispatcher(world.notifier, watermark, mail_from=MAIL_FROM, poll=0.02).dispatch_pending())
    await asyncio.sleep(0.3)
    assert not waiting.done() and reminder(world, rid).state == "pending"
    await asyncio.to_thread(world.assign, FIRM, "acme", "otto")  # that record: the assignment
    assert await asyncio.wait_for(waiting, 5) == 1
    assert sorted(d.user_id for d in world.deliveries()) == ["chloe", "otto", "rita"]


async def test_the_dispatcher_gives_up_waiting_after_max_wait(world: World) -> None:
    async def watermark() -> dict[str, int]:
        return {tracking_name("platform.partner-clients", 0): 10_000}

    world.remind(FIRM, "acme", "ada")
    slow = ReminderDispatcher(world.notifier, watermark, mail_from=MAIL_FROM, max_wait=0.2, poll=0.02)
    assert await asyncio.wait_for(slow.dispatch_pending(), 5) == 1
    assert len(world.deliveries()) == 2
