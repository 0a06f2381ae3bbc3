"""The digest scheduler at the service layer, on a temporary SQLite store (no broker)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.notifier.application import digests as digests_module
from services.notifier.application.digests import ALREADY_SENT, DigestScheduler
from services.notifier.application.notifier import Notifier
from services.notifier.domain.model import Delivery, Preference
from services.notifier.emails.render import digest_message_id
from services.notifier.projections.schedule import ScheduleIndex
from tests.notifier.world import LONG_AGO, MAIL_FROM, World, cph, digest_at

FIRM = "firm-1"


@pytest.fixture
def world(tmp_path: Path) -> World:
    made = World(f"sqlite:///{tmp_path / 'notifier.db'}")
    made.member(FIRM, "ada", role="admin", locale="en")
    made.member(FIRM, "chloe", role="accountant", locale="fr")
    made.member(FIRM, "otto", role="accountant")
    made.client(FIRM, "acme", name="Acme ApS", accountants=("chloe",))
    made.client(FIRM, "sg", name="Société Générale", accountants=("chloe", "otto"))
    made.client(FIRM, "zeta", name="Zeta", accountants=("otto",))
    return made


def test_the_first_digest_is_the_first_monday_10_00_after_the_preference_was_set(world: World) -> None:
    world.prefer(FIRM, "acme", "chloe", "daily", at=cph(2026, 3, 2, 10, 1))  # a Monday, just after the slot
    assert digest_at(world, cph(2026, 3, 3)) == {}  # daily, but the first digest waits for a Monday
    assert digest_at(world, cph(2026, 3, 6)) == {}
    assert digest_at(world, cph(2026, 3, 9, 9, 59)) == {}
    assert digest_at(world, cph(2026, 3, 9)) == {"chloe": ["acme"]}
    assert digest_at(world, cph(2026, 3, 10)) == {"chloe": ["acme"]}  # then every weekday


def test_one_email_per_recipient_per_due_time_covering_every_client_due_then(world: World) -> None:
    world.prefer(FIRM, "acme", "ada", "daily")
    world.prefer(FIRM, "sg", "ada", "weekly")
    world.prefer(FIRM, "zeta", "ada", "monthly")
    world.prefer(FIRM, "sg", "otto", "weekly")
    world.prefer(FIRM, "zeta", "otto", "daily")
    runs = {
        cph(2026, 3, 2): {"ada": ["acme", "sg", "zeta"], "otto": ["sg", "zeta"]},  # first Monday of March
        cph(2026, 3, 3): {"ada": ["acme"], "otto": ["zeta"]},  # Tuesday: daily only
        cph(2026, 3, 4): {"ada": ["acme"], "otto": ["zeta"]},
        cph(2026, 3, 5): {"ada": ["acme"], "otto": ["zeta"]},
        cph(2026, 3, 6): {"ada": ["acme"], "otto": ["zeta"]},
        cph(2026, 3, 7): {},  # Saturday: nothing
        cph(2026, 3, 9): {"ada": ["acme", "sg"], "otto": ["sg", "zeta"]},  # a Monday, not the first
        cph(2026, 4, 6): {"ada": ["acme", "sg", "zeta"], "otto": ["sg", "zeta"]},  # first Monday, summer time
    }
    for at, expected in runs.items():
        assert digest_at(world, at) == expected, at
    digests = world.deliveries("digest")
    assert len({d.message_id for d in digests}) == len(digests)
    april = [d for d in digests if d.content["due_at"] == cph(2026, 4, 6).isoformat()]
    assert {d.message_id for d in april} == {
        digest_message_id(user, cph(2026, 4, 6), MAIL_FROM, partner_id=FIRM) for user in ("ada", "otto")
    }
    assert datetime.fromisoformat(april[0].content["due_at"]).astimezone(UTC).hour == 8  # 10:00 CEST


def test_the_digest_carries_the_current_figures_and_the_recipient(world: World) -> None:
    world.figures(FIRM, "acme", "1234.50", "EUR", missing=7, ready=3)
    world.figures(FIRM, "acme", "99.00", "EUR", missing=1, ready=2)  # newer: wins
    world.prefer(FIRM, "acme", "chloe")
    world.prefer(FIRM, "sg", "chloe")
    world.scheduler.run(cph(2026, 1, 12))
    (digest,) = world.deliveries("digest")
    assert digest.kind == "digest" and digest.partner_id == FIRM and digest.user_id == "chloe"
    assert digest.content["recipient"] == {"user_id": "chloe", "email": "chloe@firm.test", "name": "Chloe",
                                           "locale": "fr"}
    acme = next(c for c in digest.content["clients"] if c["client_id"] == "acme")
    assert acme == {"client_id": "acme", "name": "Acme ApS", "wallet_balance": {"amount": "99.00", "currency": "EUR"},
                    "missing_receipts": 1, "ready_to_export": 2}
    sg = next(c for c in digest.content["clients"] if c["client_id"] == "sg")
    assert sg["wallet_balance"] is None


def test_a_missed_due_time_is_sent_once_when_the_service_comes_back(world: World) -> None:
    world.prefer(FIRM, "sg", "otto", "weekly")
    world.prefer(FIRM, "zeta", "otto", "daily")
    world.prefer(FIRM, "acme", "chloe", "weekly")
    assert digest_at(world, cph(2026, 3, 2)) == {"otto": ["sg", "zeta"], "chloe": ["acme"]}
    # Down from Monday 2 March 10:05 until Wednesday 25 March 11:30: three Mondays, 16 weekdays missed.
    back = cph(2026, 3, 25, 11, 30)
    world.scheduler.run(back)
    catch_up = [d for d in world.deliveries("digest") if datetime.fromisoformat(d.content["due_at"]) > cph(2026, 3, 2)]
    assert sorted((d.user_id, sorted(d.client_ids), d.content["due_at"]) for d in catch_up) == [
        ("chloe", ["acme"], cph(2026, 3, 23).isoformat()),  # the latest missed Monday, once
        ("otto", ["sg", "zeta"], cph(2026, 3, 25).isoformat()),  # one email: the latest due time of them
    ]
    assert digest_at(world, cph(2026, 3, 25, 23, 0)) == {}
    assert digest_at(world, cph(2026, 3, 26)) == {"otto": ["zeta"]}
    assert digest_at(world, cph(2026, 3, 30)) == {"otto": ["sg", "zeta"], "chloe": ["acme"]}


def test_preference_changes(world: World) -> None:
    world.prefer(FIRM, "acme", "chloe", "daily")
    assert digest_at(world, cph(2026, 3, 2)) == {"chloe": ["acme"]}
    world.prefer(FIRM, "acme", "chloe", "daily", enabled=False, at=cph(2026, 3, 2, 12))
    assert digest_at(world, cph(2026, 3, 3)) == {}
    assert digest_at(world, cph(2026, 3, 9)) == {}
    # On again, weekly: a new schedule, from the first Monday after the change.
    world.prefer(FIRM, "acme", "chloe", "weekly", at=cph(2026, 3, 9, 12))
    assert digest_at(world, cph(2026, 3, 13)) == {}
    assert digest_at(world, cph(2026, 3, 16)) == {"chloe": ["acme"]}
    assert digest_at(world, cph(2026, 3, 17)) == {}
    # Monthly from a Wednesday: the first digest is the next Monday, then first Mondays.
    world.prefer(FIRM, "acme", "chloe", "monthly", at=cph(2026, 3, 18, 9))
    assert digest_at(world, cph(2026, 3, 23)) == {"chloe": ["acme"]}
    assert digest_at(world, cph(2026, 3, 30)) == {}
    assert digest_at(world, cph(2026, 4, 6)) == {"chloe": ["acme"]}


def test_only_members_who_may_see_the_client_get_it(world: World) -> None:
    world.member(FIRM, "rita", role="accountant")
    world.client(FIRM, "gone", name="Gone Ltd", accountants=("chloe",))
    world.client(FIRM, "invited", name="Invited Inc", status="invited", accountants=("chloe",))
    world.client(FIRM, "onboarding", name="Onboarding SA", status="onboarding", accountants=("chloe",))
    for client in ("acme", "sg", "zeta", "gone", "invited", "onboarding"):
        world.prefer(FIRM, client, "chloe")
        world.prefer(FIRM, client, "ada")
    world.prefer(FIRM, "acme", "rita")
    world.prefer(FIRM, "acme", "otto")
    world.prefer(FIRM, "elsewhere", "ada")  # not a client of this firm
    world.publish("client.disconnected.v1", FIRM, {"client_id": "gone"})
    world.unassign(FIRM, "sg", "chloe")
    world.publish("partner.member.removed.v1", FIRM, {"user_id": "rita"})
    made = digest_at(world, cph(2026, 1, 12))
    assert made == {
        # the admin: every active client of the firm, assigned or not, invited included
        "ada": ["acme", "invited", "onboarding", "sg", "zeta"],
        # the accountant: assigned clients only, never an invited one; not `sg` any more
        "chloe": ["acme", "onboarding"],
        # otto is not assigned to acme; rita left the firm: no email at all
    }
    skipped = {(e.originator_id, e.reason) for e in world.events(Preference.Skipped.TOPIC)}
    # chloe: sg (unassigned), zeta (never assigned), gone, invited; ada: gone, elsewhere;
    # rita: acme (left the firm); otto: acme (not assigned)
    assert len(skipped) == 8
    assert {r for _, r in skipped} == {
        "the recipient is not a member of the firm", "the accountant is not assigned to the client",
        "the client is not (or no longer) a client of the firm", "accountants do not see invited clients"}
    # Skipped preferences are not looked at again before their next due time.
    assert digest_at(world, cph(2026, 1, 12, 10, 30)) == {}
    assert len(world.events(Preference.Skipped.TOPIC)) == 8


def test_an_accountant_assigned_again_gets_the_client_again(world: World) -> None:
    world.prefer(FIRM, "sg", "chloe")
    world.unassign(FIRM, "sg", "chloe")
    assert digest_at(world, cph(2026, 1, 12)) == {}
    world.assign(FIRM, "sg", "chloe")
    assert digest_at(world, cph(2026, 1, 19)) == {"chloe": ["sg"]}


def test_running_twice_for_the_same_instant_makes_nothing_twice(world: World) -> None:
    world.prefer(FIRM, "acme", "chloe")
    world.prefer(FIRM, "sg", "otto")
    first = world.scheduler.run(cph(2026, 1, 12))
    head = world.head()
    second = world.scheduler.run(cph(2026, 1, 12))
    assert (first.digests, first.covered, second.digests, second.covered) == (2, 2, 0, 0)
    assert world.head() == head  # nothing at all was written


def test_two_schedulers_at_once_make_each_digest_once(world: World, tmp_path: Path) -> None:
    world.prefer(FIRM, "acme", "chloe")
    world.prefer(FIRM, "sg", "chloe")
    world.prefer(FIRM, "sg", "otto")
    other_app = Notifier(world.store)
    other = DigestScheduler(other_app, ScheduleIndex(other_app), mail_from=MAIL_FROM)
    other.index.catch_up()
    # The other scheduler loads the same due preferences, then this one records first.
    due = other.index.due(cph(2026, 1, 12))
    assert len(due) == 3
    world.scheduler.run(cph(2026, 1, 12))
    result = other.run(cph(2026, 1, 12))
    assert result.digests == 0
    assert sorted(d.user_id for d in world.deliveries("digest")) == ["chloe", "otto"]


def test_recipients_are_made_in_batches_of_one_transaction(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(7):
        world.member(FIRM, f"admin-{n}", role="admin")
        world.prefer(FIRM, "acme", f"admin-{n}")
    monkeypatch.setattr(digests_module, "BATCH", 3)
    transactions: list[int] = []
    real_record = world.notifier.record

    def record(*aggregates: Any, **kwargs: Any) -> Any:
        transactions.append(len(aggregates))
        return real_record(*aggregates, **kwargs)

    monkeypatch.setattr(world.notifier, "record", record)
    head = world.head()
    result = world.scheduler.run(cph(2026, 1, 12))
    assert (result.digests, result.covered, result.skipped) == (7, 7, 0)
    # Each recipient's digest and covered preference, 3 recipients per transaction.
    assert transactions == [6, 6, 2]
    written = world.notifier.recorder.select_notifications(start=head, limit=1000, inclusive_of_start=False)
    assert len({n.originator_id for n in written}) == 14
    assert sorted(d.user_id for d in world.deliveries("digest")) == [f"admin-{n}" for n in range(7)]


def test_a_batch_that_conflicts_is_made_again_one_recipient_at_a_time(
    world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    world.prefer(FIRM, "acme", "chloe")
    world.prefer(FIRM, "sg", "otto")
    real_plan = DigestScheduler.plan
    interfered = False

    def plan_then_interfere(self: DigestScheduler, *args: Any, **kwargs: Any) -> Any:
        nonlocal interfered
        if not interfered:
            interfered = True  # otto turns his emails off while the batch is being made
            world.prefer(FIRM, "sg", "otto", enabled=False, at=datetime.now(UTC))
        return real_plan(self, *args, **kwargs)

    monkeypatch.setattr(DigestScheduler, "plan", plan_then_interfere)
    result = world.scheduler.run(cph(2026, 1, 12))
    # The batch's transaction failed on otto's preference; each was made again on its own.
    assert (result.digests, result.message_ids) == (1, [digest_message_id("chloe", cph(2026, 1, 12), MAIL_FROM,
                                                                           partner_id=FIRM)])
    assert [d.user_id for d in world.deliveries("digest")] == ["chloe"]
    assert world.scheduler.run(cph(2026, 1, 12)).digests == 0


def test_a_preference_arriving_after_its_due_time_was_sent_does_not_reuse_the_message_id(world: World) -> None:
    world.prefer(FIRM, "acme", "chloe", "daily")
    assert digest_at(world, cph(2026, 3, 2)) == {"chloe": ["acme"]}
    # Set last week, but applied only now (the consumer lagged): its first Monday was 2 March,
    # whose digest to chloe went out already, without it.
    world.prefer(FIRM, "sg", "chloe", "weekly", at=cph(2026, 2, 25))
    assert digest_at(world, cph(2026, 3, 2, 10, 30)) == {}
    skip = world.events(Preference.Skipped.TOPIC)[-1]
    assert skip.reason == ALREADY_SENT
    assert digest_at(world, cph(2026, 3, 9)) == {"chloe": ["acme", "sg"]}


def test_the_index_knows_when_each_preference_is_next_due(world: World) -> None:
    world.prefer(FIRM, "acme", "chloe", "monthly", at=cph(2026, 3, 4, 15))
    world.prefer(FIRM, "sg", "otto", "daily", enabled=False)
    world.index.catch_up()
    assert world.index.earliest_due() == cph(2026, 3, 9)
    assert world.index.due(cph(2026, 3, 9, 9, 59)) == []
    world.scheduler.run(cph(2026, 3, 9))
    assert world.index.earliest_due() == cph(2026, 4, 6)
    assert [r.client_id for r in world.index.of_user(FIRM, "chloe")] == ["acme"]


def test_the_preview_shows_the_next_digest_and_writes_nothing(world: World) -> None:
    world.prefer(FIRM, "acme", "chloe", "daily", at=cph(2026, 3, 4))
    world.prefer(FIRM, "sg", "chloe", "monthly", at=cph(2026, 3, 4))
    world.index.catch_up()
    world.prefer(FIRM, "onboarding", "chloe", "weekly", at=cph(2026, 3, 4))  # not indexed yet
    head = world.head()
    plan = world.scheduler.next_digest(FIRM, "chloe", cph(2026, 3, 5))
    assert plan is not None and plan.due_at == cph(2026, 3, 9)
    assert sorted(c.client_id for _, c in plan.included) == ["acme", "sg"]
    assert [(p.client_id, why) for p, why in plan.excluded] == [
        ("onboarding", "the client is not (or no longer) a client of the firm")]
    assert world.head() == head
    assert world.deliveries() == []
    assert isinstance(plan.delivery(), Delivery)  # what would be recorded, not recorded
    assert world.deliveries() == []
    assert world.scheduler.next_digest(FIRM, "nobody", cph(2026, 3, 5)) is None


def test_one_user_in_two_firms_gets_two_digests_with_their_own_ids(world: World) -> None:
    world.member("firm-2", "chloe", role="admin", locale="fr")
    world.client("firm-2", "acme", name="Acme of firm 2")
    world.prefer(FIRM, "acme", "chloe")
    world.prefer("firm-2", "acme", "chloe")
    world.scheduler.run(cph(2026, 1, 12))
    digests = world.deliveries("digest")
    assert sorted(d.partner_id for d in digests) == [FIRM, "firm-2"]
    assert len({d.message_id for d in digests}) == 2


def test_a_preference_set_before_the_start_is_due_from_its_first_monday(world: World) -> None:
    world.prefer(FIRM, "acme", "chloe", "weekly", at=LONG_AGO)
    assert world.scheduler.run(cph(2026, 1, 12, 9, 59, )).digests == 0
    assert world.scheduler.run(cph(2026, 1, 12)).digests == 1


async def test_a_new_preference_wakes_the_scheduler_at_once_not_at_its_next_minute(world: World) -> None:
    """The loop sleeps until the earliest due time it knows (at most a minute); a preference
    set meanwhile wakes it to look again, so a first digest already due goes out at once."""
    loop = world.service.schedule_loop
    index = world.index
    index.bind(asyncio.get_running_loop())
    index.catch_up()
    assert not loop.wake.is_set()
    world.prefer(FIRM, "acme", "chloe", "weekly")
    await asyncio.to_thread(index.catch_up)
    await asyncio.sleep(0)  # the wake-up is handed to this loop from the follower's thread
    assert loop.wake.is_set()
