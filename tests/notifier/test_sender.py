"""The sender against real aiosmtpd servers that misbehave, on a temporary SQLite store:
what each SMTP answer ends as, what is published, and what a restart sends."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contracts.envelope import CloudEvent
from services.notifier.adapters.smtp import SmtpMailer
from services.notifier.application import sender as sender_module
from services.notifier.application.notifier import Notifier
from services.notifier.application.reminders import ReminderDispatcher
from services.notifier.application.sender import MailSender
from services.notifier.application.unsubscribe import UnsubscribeTokens
from services.notifier.domain.model import Delivery
from services.notifier.projections.schedule import ScheduleIndex
from tests.notifier.test_smtp import Handler, free_port, raw_server, settings_for, smtp_server
from tests.notifier.world import MAIL_FROM, SECRET, World, cph

ROOT = Path(__file__).resolve().parents[2]
FIRM = "firm-s"
USERS = ("anna", "bo", "chloe", "dan")


class Crash(BaseException):
    """The process dies here: not an Exception, so nothing on the way catches it (and not
    SystemExit, which asyncio re-raises out of the event loop when a task raises it)."""


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
    await ReminderDispatcher(world.notifier, None, mail_from=MAIL_FROM, settle=0.0).dispatch_pending()
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
    # A reminder's outcome names its reminder (the client directory's history settles by it).
    assert {e.data["reminder_id"] for e in sent} == {d.content["reminder_id"] for d in world.deliveries()}


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
    assert failed.data["reminder_id"]
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
                raise Crash("killed")
            recorded += 1
            return real_record(*args, **kwargs)

        world.notifier.record = record_then_crash  # type: ignore[method-assign]
        with pytest.raises(Crash):
            await crashing.send_all()
        world.notifier.record = real_record  # type: ignore[method-assign]
        assert len(handler.messages) == 3
        # A new process on the same store.
        again = Notifier(world.store)
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
    assert claim.issued_at == cph(2026, 1, 12)  # bound to the choices made before the digest's due time


# --- the pipeline: rendering ahead, records overlapping the next envelope ---------------------------


@dataclass
class Witness(Handler):
    """Accepts like `Handler`, and notes, at each acceptance, how many emails the store says were
    sent, read through connections of its own: only what is committed."""

    reader: Notifier | None = None
    recorded_when_accepted: list[int] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        assert self.reader is not None
        sent = self.reader.recorder.select_notifications(start=None, limit=10_000, topics=[Delivery.Sent.TOPIC])
        self.recorded_when_accepted.append(len(sent))
        return await super().handle_DATA(server, session, envelope)


async def test_emails_go_out_in_order_and_each_is_accepted_only_once_the_previous_outcome_is_durable(
    world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for _ in range(6):
        world.remind(FIRM, "acme", "ada")
    await ReminderDispatcher(world.notifier, None, mail_from=MAIL_FROM, settle=0.0).dispatch_pending()
    due = world.deliveries()
    assert len(due) == 24
    # Two were settled already (by a sender that crashed after recording them, say), among
    # them the very last: they are not sent, and the position still moves past them.
    for settled in (due[9], due[-1]):
        settled.sent(1)
        world.notifier.record(settled)
    monkeypatch.setattr(sender_module, "PAGE", 5)  # several pages, the next loaded while one is sent
    handler = Witness(reader=Notifier(world.store))
    async with smtp_server(handler) as server:
        mail = sender(world, server.port)
        report = await mail.send_all()
        assert report.sent == 22
        last_due = world.notifier.recorder.select_notifications(start=None, limit=100, topics=[Delivery.Due.TOPIC])
        assert mail.position() == last_due[-1].id
    expected = [d.message_id for d in due if d not in (due[9], due[-1])]
    assert [m.message["Message-ID"] for m in handler.messages] == expected  # in order, each once
    # When the n-th email (from 0) was accepted, exactly the n before it were recorded as sent
    # (besides the 2 settled beforehand): never two accepted without their outcome recorded,
    # and no outcome recorded before its email was accepted.
    assert handler.recorded_when_accepted == [2 + n for n in range(22)]
    assert set(states(world).values()) == {"sent"}
    assert len(published(world, "notification.email_sent.v1")) == 22


async def run_killed(world: World, port: int, victim: str, where: str) -> int:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.notifier.killed_sender", f"sqlite:///{world.store.path}", str(port), victim,
        where, cwd=ROOT,
    )
    return await asyncio.wait_for(process.wait(), 60)


@pytest.mark.parametrize("where", ["render", "record"])
async def test_a_sigkill_resends_at_most_the_last_email_accepted_before_it(world: World, where: str) -> None:
    """SIGKILL while the third email is rendered (the one before it on the wire, or its outcome
    being recorded), or right after the third was accepted, before its outcome is recorded: a
    restart resends at most the last email the server accepted before the kill, never an
    earlier one."""
    await remind_all(world)
    order = [d.user_id for d in world.deliveries()]
    handler = Handler()
    async with smtp_server(handler) as server:
        assert await run_killed(world, server.port, order[2], where) == -signal.SIGKILL
        accepted = [m.rcpt_tos[0].split("@")[0] for m in handler.messages]
        if where == "render":
            assert accepted in ([], order[:1], order[:2])
        else:
            assert accepted == order[:3]  # the fourth's DATA waited for the third's record
        # A new process on the same store.
        again = Notifier(world.store)
        restarted = MailSender(again, SmtpMailer(settings_for(server.port)), mail_from=MAIL_FROM,
                               base_url="https://portal.test", unsubscribe_base="https://notifier.test",
                               tokens=UnsubscribeTokens(SECRET), index=ScheduleIndex(again))
        await restarted.send_all()
    received = [m.rcpt_tos[0].split("@")[0] for m in handler.messages]
    duplicated = [user for user, n in Counter(received).items() if n > 1]
    assert sorted(set(received)) == sorted(order)  # nobody missed
    assert set(duplicated) <= set(accepted[-1:])
    if where == "record":
        assert duplicated == [order[2]]  # accepted, its outcome never recorded: sent again, once
    ids = {m.message["Message-ID"] for m in handler.messages}
    assert len(ids) == len(order)  # a resend carries the same Message-ID
    assert set(states(world).values()) == {"sent"}
