"""The sender against real aiosmtpd servers that misbehave, on a temporary SQLite store:
what each SMTP answer ends as, what is published, and what a restart sends."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contracts.envelope import CloudEvent
from services.notifier.adapters.smtp import SmtpMailer
from services.notifier.application.notifier import Notifier
from services.notifier.application.reminders import ReminderDispatcher
from services.notifier.application.sender import MailSender
from services.notifier.application.unsubscribe import UnsubscribeTokens
from services.notifier.projections.schedule import ScheduleIndex
from tests.notifier.test_smtp import Handler, free_port, raw_server, settings_for, smtp_server
from tests.notifier.world import MAIL_FROM, SECRET, World, cph

FIRM = "firm-s"
USERS = ("anna", "bo", "chloe", "dan")


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def world(tmp_path: Path) -> World:
    made = World(f"sqlite:///{tmp_path / 'notifier.db'}")
    made.member(FIRM, "ada", role="admin", name="Ada Admin")
    for user in USERS:
        made.member(FIRM, user, locale="fr" if user == "chloe" else "en")
    made.client(FIRM, "acme", name="Acme ApS", accountants=USERS)
    return made


async def remind_all(world: World) -> None:
    world.remind(FIRM, "acme", "ada", comment="Merci")
    await ReminderDispatcher(world.notifier, None, settle=0.0).dispatch_pending()
    assert len(world.deliveries()) == len(USERS)


def sender(world: World, port: int, clock: Callable[[], datetime] | None = None, **smtp: Any) -> MailSender:
    settings = settings_for(port, **{"timeout": 1.0, **smtp})
    return MailSender(world.notifier, SmtpMailer(settings), mail_from=MAIL_FROM, base_url="https://portal.test",
                      unsubscribe_base="https://notifier.test", tokens=UnsubscribeTokens(SECRET), index=world.index,
                      attempts=3, base_delay=0.01, max_delay=0.05, outage_delay=0.05, max_outage_delay=0.2,
                      clock=clock or (lambda: datetime.now(UTC)))


def states(world: World) -> dict[str, str]:
    return {d.user_id: d.state for d in world.deliveries()}


def published(world: World, type_: str) -> list[CloudEvent]:
    return [CloudEvent.model_validate(m) for m in world.outbound(type_)]


async def test_4xx_a_few_times_then_accepted_is_delivered_once(world: World) -> None:
    await remind_all(world)
    handler = Handler(data_replies=deque(["421 4.3.2 Shutting down", "451 4.3.0 Try again later"]))
    async with smtp_server(handler) as server:
        report = await sender(world, server.port).send_all()
    assert (report.sent, report.failed, report.deferred, report.outage) == (4, 0, 0, False)
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == sorted(f"{u}@firm.test" for u in USERS)
    assert len({m.message["Message-ID"] for m in handler.messages}) == 4
    first = next(d for d in world.deliveries() if d.state == "sent" and d.attempts == 3)
    assert first.outcome == "250 accepted"
    sent = published(world, "notification.email_sent.v1")
    assert sorted(e.data["user_id"] for e in sent) == sorted(USERS)
    assert {e.data["message_id"] for e in sent} == {d.message_id for d in world.deliveries()}


async def test_550_is_a_recorded_permanent_failure_and_is_published(world: World) -> None:
    await remind_all(world)
    handler = Handler(rcpt_replies={"bo@firm.test": "550 5.1.1 No such user"})
    async with smtp_server(handler) as server:
        report = await sender(world, server.port).send_all()
    assert (report.sent, report.failed) == (3, 1)
    assert states(world) == {"anna": "sent", "bo": "failed", "chloe": "sent", "dan": "sent"}
    (failed,) = published(world, "notification.email_failed.v1")
    assert (failed.data["user_id"], failed.data["code"], failed.data["kind"]) == ("bo", 550, "reminder")
    assert "No such user" in failed.data["reason"]
    assert failed.data["client_ids"] == ["acme"]
    assert len(handler.messages) == 3  # tried once, never again


async def test_a_persistent_4xx_defers_that_email_while_the_others_go_on(world: World) -> None:
    await remind_all(world)
    clock = Clock()
    handler = Handler(rcpt_replies={"chloe@firm.test": "452 4.2.2 Mailbox full"})
    async with smtp_server(handler) as server:
        mail = sender(world, server.port, clock)
        report = await mail.send_all()
        assert (report.sent, report.deferred) == (3, 1)
        chloe = next(d for d in world.deliveries() if d.user_id == "chloe")
        assert chloe.state == "deferred" and chloe.attempts == 3 and chloe.retry_at is not None
        assert timedelta(seconds=30) <= chloe.retry_at - clock.now <= timedelta(minutes=1)
        assert (await mail.send_all()).deferred == 0  # not before its time
        clock.now += timedelta(minutes=2)
        assert (await mail.send_all()).deferred == 1  # still full: later again, with a longer delay
        chloe = next(d for d in world.deliveries() if d.user_id == "chloe")
        assert chloe.deferrals == 2 and chloe.retry_at is not None
        assert chloe.retry_at - clock.now >= timedelta(minutes=1)
        del handler.rcpt_replies["chloe@firm.test"]  # room in the mailbox now
        clock.now += timedelta(hours=1)
        assert (await mail.send_all()).sent == 1
    assert states(world)["chloe"] == "sent"
    assert [m.rcpt_tos for m in handler.messages].count(["chloe@firm.test"]) == 1
    assert published(world, "notification.email_failed.v1") == []


async def test_a_4xx_that_outlasts_the_retry_period_fails_for_good(world: World) -> None:
    await remind_all(world)
    clock = Clock()
    handler = Handler(rcpt_replies={"dan@firm.test": "450 4.2.1 Greylisted"})
    async with smtp_server(handler) as server:
        mail = sender(world, server.port, clock)
        await mail.send_all()
        clock.now += timedelta(hours=25)
        report = await mail.send_all()
    assert report.failed == 1 and states(world)["dan"] == "failed"
    (failed,) = published(world, "notification.email_failed.v1")
    assert failed.data["code"] == 450 and "still refused after" in failed.data["reason"]


async def test_a_stalled_server_is_an_outage_in_bounded_time_and_mail_goes_out_once_after(world: World) -> None:
    await remind_all(world)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accept, then never answer

    async with raw_server(silent) as port:
        started = time.monotonic()
        report = await sender(world, port, timeout=0.2).send_all()
        elapsed = time.monotonic() - started
    assert report.outage and "timed out" in report.reason.lower()
    assert elapsed < 3.0
    assert set(states(world).values()) == {"due"}  # nothing given up, nothing recorded
    assert published(world, "notification.email_failed.v1") == []
    handler = Handler()
    async with smtp_server(handler) as server:
        report = await sender(world, server.port).send_all()
    assert report.sent == 4 and len(handler.messages) == 4


async def test_a_long_outage_keeps_everything_due_and_it_is_delivered_once_when_the_server_returns(
    world: World,
) -> None:
    await remind_all(world)
    port = free_port()  # nobody listens: connection refused
    mail = sender(world, port)
    running = asyncio.create_task(mail.run(interval=0.05))
    await asyncio.sleep(1.0)  # many attempts, all refused
    assert set(states(world).values()) == {"due"}
    handler = Handler()
    async with smtp_server(handler) as server:
        mail.mailer = SmtpMailer(settings_for(server.port, timeout=1.0))  # the relay is back (where it was)
        deadline = time.monotonic() + 10
        while len(handler.messages) < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        mail.stop()
        await asyncio.wait_for(running, 5)
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == sorted(f"{u}@firm.test" for u in USERS)
    assert set(states(world).values()) == {"sent"}


async def test_a_restart_sends_only_what_was_not_recorded_as_sent(world: World, tmp_path: Path) -> None:
    await remind_all(world)
    handler = Handler()
    async with smtp_server(handler) as server:
        crashing = sender(world, server.port)
        recorded = 0
        real_record = world.notifier.record

        def record_then_crash(*args: Any, **kwargs: Any) -> Any:
            nonlocal recorded
            if recorded == 2:  # the third email was accepted, then the process died
                raise SystemExit("killed")
            recorded += 1
            return real_record(*args, **kwargs)

        world.notifier.record = record_then_crash  # type: ignore[method-assign]
        with pytest.raises(SystemExit):
            await crashing.send_all()
        world.notifier.record = real_record  # type: ignore[method-assign]
        assert len(handler.messages) == 3
        # A new process on the same store.
        again = Notifier(world.store)
        again.mail_from = MAIL_FROM
        restarted = MailSender(again, SmtpMailer(settings_for(server.port)), mail_from=MAIL_FROM,
                               base_url="https://portal.test", unsubscribe_base="https://notifier.test",
                               tokens=UnsubscribeTokens(SECRET), index=ScheduleIndex(again))
        assert (await restarted.send_all()).sent == 2
        assert (await restarted.send_all()).sent == 0
    ids = [m.message["Message-ID"] for m in handler.messages]
    assert len(ids) == 5 and len(set(ids)) == 4  # one duplicate, with the same Message-ID
    assert set(states(world).values()) == {"sent"}


async def test_digests_carry_one_click_unsubscribe_headers_that_work(world: World) -> None:
    world.prefer(FIRM, "acme", "chloe", "weekly")
    world.scheduler.run(cph(2026, 1, 12))
    handler = Handler()
    async with smtp_server(handler) as server:
        await sender(world, server.port).send_all()
    (received,) = handler.messages
    raw = received.content.decode()
    header = next(line for line in raw.splitlines() if line.startswith("List-Unsubscribe:"))
    assert header.startswith("List-Unsubscribe: <https://notifier.test/unsubscribe/") and "=?" not in header
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in raw
    token = header.split("/unsubscribe/")[1].rstrip(">")
    claim = UnsubscribeTokens(SECRET).verify(token)
    assert claim is not None
    assert (claim.kind, claim.user_id, claim.ref) == ("d", "chloe", received.message["Message-ID"])
