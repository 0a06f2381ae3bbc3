"""SIGKILL the notifier in the middle of a digest run for many recipients, restart it, and
count what arrived: nobody missed, at most one duplicate per kill, duplicates with the same
Message-ID, and only ever the last email the server accepted before a kill (the sender
records each outcome before the next email can be accepted: docs/RELIABILITY.md).

The digests are made due by the scheduler as of the latest weekly due time (so the service's
own scheduler, on the real clock, finds nothing more to do); the service process sends them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from deploy.localbroker import free_port
from deploy.smtp_sink import SinkHandler, start_sink
from services.notifier.domain.schedule import previous_slot
from tests.conftest import unique
from tests.notifier.world import LONG_AGO, MAIL_FROM, SECRET, World

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
RECIPIENTS = 400
KILLS = 2


def start(store: str, bootstrap: str, smtp_port: int, group: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFIER_", "SMTP_", "KAFKA_"))}
    env.update(NOTIFIER_DB=store, KAFKA_BOOTSTRAP_SERVERS=bootstrap, SMTP_HOST="127.0.0.1",
               SMTP_PORT=str(smtp_port), NOTIFIER_HTTP_PORT=str(free_port()), MAIL_FROM=MAIL_FROM,
               NOTIFIER_UNSUBSCRIBE_SECRET=SECRET, NOTIFIER_GROUP_ID=group)
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "services.notifier"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def mine(sink: SinkHandler, domain: str) -> list[tuple[str, str]]:
    """(recipient, Message-ID) of every message that reached the sink for this test's firm."""
    return [(str(m["To"]), str(m["Message-ID"])) for m in list(sink.messages) if domain in str(m["To"])]


def wait_until(condition: object, timeout: float, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if process.poll() is not None:
            raise AssertionError(f"the notifier exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; log:\n{log.read_text()[-3000:]}")
        time.sleep(0.005)


def test_sigkill_mid_run_misses_nobody_and_duplicates_at_most_once_per_kill(
    broker, stores, store_kind: str, tmp_path: Path
) -> None:
    firm = unique("firm")
    domain = f"@{firm}.test"
    store = stores.new(store_kind)
    world = World(store)
    users = [f"u{n:04d}" for n in range(RECIPIENTS)]
    world.client(firm, "acme", name="Acme ApS")
    world.figures(firm, "acme", "1234.50", missing=3, ready=1)
    for user in users:
        world.publish("partner.member.added.v1", firm, {"user_id": user, "email": f"{user}{domain}",
                                                         "name": user, "role": "admin", "locale": "en"})
        world.prefer(firm, "acme", user, "weekly", at=LONG_AGO)
    due = previous_slot("weekly", datetime.now(UTC))
    assert world.scheduler.run(due).digests == RECIPIENTS

    port = free_port()
    controller, sink = start_sink(port)
    log = tmp_path / "notifier.log"
    group = f"notifier-kill-{uuid.uuid4().hex[:6]}"  # the same group across restarts, as in production
    kills_at: list[int] = []
    try:
        for _ in range(KILLS):
            process = start(store, broker.bootstrap, port, group, log)
            target = len(mine(sink, domain)) + max(20, RECIPIENTS // (KILLS + 2))
            wait_until(lambda t=target: len(mine(sink, domain)) >= t, 90, process, log)
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            time.sleep(0.5)  # the sink may still be taking the last message it was sent
            kills_at.append(len(mine(sink, domain)))
            assert kills_at[-1] < RECIPIENTS, "the run ended before the kill: not a mid-run kill"
        process = start(store, broker.bootstrap, port, group, log)
        try:
            wait_until(lambda: len({i for _, i in mine(sink, domain)}) >= RECIPIENTS, 120, process, log)
            time.sleep(1.0)  # anything more would arrive meanwhile
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(15)
    finally:
        controller.stop()

    received = mine(sink, domain)
    per_recipient: dict[str, set[str]] = {}
    for to, message_id in received:
        per_recipient.setdefault(to, set()).add(message_id)
    duplicates = len(received) - len({i for _, i in received})
    print(f"\nkill test ({store_kind}): {RECIPIENTS} recipients, {KILLS} kills after {kills_at} emails, "
          f"{len(received)} emails received, {duplicates} duplicate(s): "
          f"{[i for i, n in Counter(i for _, i in received).items() if n > 1]}")
    assert len(per_recipient) == RECIPIENTS  # nobody missed
    assert all(len(ids) == 1 for ids in per_recipient.values())  # a duplicate carries the same Message-ID
    assert duplicates <= KILLS
    # Only the email in flight at a kill may go twice: the last one accepted before it.
    last_before_kill = {received[n - 1][1] for n in kills_at if n}
    assert {i for i, n in Counter(i for _, i in received).items() if n > 1} <= last_before_kill
    again = World(store)
    assert {d.state for d in again.deliveries("digest") if d.partner_id == firm} == {"sent"}
