"""`digests run --at` as a subprocess against each kind of store and a real SMTP server: the
store is filled through the notifier's own inbox (no broker needed by the command)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.localbroker import free_port
from services.notifier.emails.render import digest_message_id
from tests.conftest import unique
from tests.notifier.world import MAIL_FROM, SECRET, World, cph

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def run(store_url: str, smtp_port: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFIER_", "SMTP_", "KAFKA_"))}
    # A broker address where nothing listens: the command must not need one.
    env.update(NOTIFIER_DB=store_url, SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp_port), MAIL_FROM=MAIL_FROM,
               NOTIFIER_UNSUBSCRIBE_SECRET=SECRET, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    return subprocess.run([sys.executable, "-m", "services.notifier", "digests", "run", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_digests_run_at_an_instant_sends_once_however_often_it_runs(smtp, stores, store_kind: str) -> None:
    smtp_port, sink = smtp
    firm = unique("firm")
    users = [unique("u") for _ in range(5)]
    store = stores.new(store_kind)
    world = World(store)
    world.member(firm, users[0], role="admin")
    for user in users[1:]:
        world.member(firm, user, locale="fr")
    world.client(firm, "acme", name="Acme ApS", accountants=tuple(users[1:3]))
    world.client(firm, "sg", name="Société Générale", accountants=tuple(users[2:]))
    for user in users:
        world.prefer(firm, "acme", user, "weekly")
        world.prefer(firm, "sg", user, "monthly")
    at = cph(2026, 2, 2)  # the first Monday of February: weekly and monthly both due

    first = run(store, smtp_port, "--at", at.isoformat())
    assert first.returncode == 0, first.stderr
    assert "5 made, covering 7 preference(s); 3 skipped" in first.stdout, first.stdout
    assert "5 sent" in first.stdout
    second = run(store, smtp_port, "--at", at.isoformat())
    assert second.returncode == 0 and "0 made" in second.stdout and "0 sent" in second.stdout

    mails = {u: sink.to(f"{u}@firm.test") for u in users}
    assert all(len(m) == 1 for m in mails.values()), {u: len(m) for u, m in mails.items()}
    for user, (mail,) in mails.items():
        assert mail["Message-ID"] == digest_message_id(user, at, MAIL_FROM, partner_id=firm)
    text = mails[users[2]][0].get_body(("plain",)).get_content()
    assert "Acme ApS" in text and "Société Générale" in text
    assert "Société Générale" not in mails[users[1]][0].get_body(("plain",)).get_content()
