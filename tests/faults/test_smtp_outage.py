"""The SMTP server goes away for 60 seconds in the middle of a digest fan-out: the running
notifier keeps the rest due, and when the server is back everything is delivered, once."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from deploy.localbroker import free_port
from deploy.smtp_sink import start_sink
from services.notifier.domain.schedule import first_due
from tests.faults.processes import ServiceProcess, wait_until
from tests.notifier.world import World

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

RECIPIENTS = 300
OUTAGE_SECONDS = 60


def test_a_60_second_smtp_outage_mid_fan_out_delays_but_never_loses_or_duplicates(broker, tmp_path: Path) -> None:
    db = tmp_path / "notifier.db"
    world = World(f"sqlite:///{db}")
    firm = "firm-outage"
    world.member(firm, "admin", role="admin")
    set_at = datetime.now(UTC)
    for n in range(RECIPIENTS):
        user = f"acc-{n}"
        world.member(firm, user)
        world.client(firm, f"client-{n}", accountants=(user,))
        world.prefer(firm, f"client-{n}", user, "weekly", at=set_at)
    # Everybody's first digest, made due now; the running service's own clock finds nothing
    # more to send before that Monday.
    made = world.scheduler.run(first_due(set_at))
    assert len(world.deliveries("digest")) == RECIPIENTS, made

    smtp_port = free_port()
    controller, sink = start_sink(smtp_port)
    service = ServiceProcess("services.notifier", {
        "NOTIFIER_DB": f"sqlite:///{db}", "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port), "SMTP_TIMEOUT": "2",
        "MAIL_FROM": "Partner portal <no-reply@portal.test>",
    }, tmp_path / "notifier.log")
    try:
        service.start()
        wait_until(lambda: len(sink.messages) >= 50, 60, what="the fan-out under way")
        controller.stop()  # the SMTP server is gone
        gone_at, delivered_before = time.monotonic(), len(sink.messages)
        time.sleep(OUTAGE_SECONDS)
        assert service.alive()
        controller, sink_after = start_sink(smtp_port)  # back, on the same address
        wait_until(lambda: delivered_before + len(sink_after.messages) >= RECIPIENTS, 180, every=0.5,
                   what="everything delivered after the outage")
        time.sleep(2)  # a duplicate, if any, would arrive meanwhile
        outage = time.monotonic() - gone_at
    finally:
        service.stop()
        controller.stop()
    messages = sink.messages + sink_after.messages
    ids = Counter(m["Message-ID"] for m in messages)
    recipients = Counter(str(m["To"]) for m in messages)
    assert len(recipients) == RECIPIENTS, "somebody was missed"
    assert len(ids) == RECIPIENTS, "one digest per recipient and due time"
    duplicates = sum(n - 1 for n in ids.values())
    # At most the one email in flight when the server vanished may go twice, with its Message-ID.
    assert duplicates <= 1
    print(f"\n{RECIPIENTS} digests: {delivered_before} before a {OUTAGE_SECONDS}s SMTP outage, "
          f"{len(sink_after.messages)} after it (back {outage - OUTAGE_SECONDS:.1f}s after the server); "
          f"missed 0, duplicates {duplicates}")
