"""`python -m services.notifier digests run|preview` as on-call runs them: a subprocess on a
store and an SMTP sink, no broker."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.localbroker import free_port
from deploy.smtp_sink import SinkHandler, start_sink
from services.notifier.emails.render import digest_message_id
from tests.notifier.world import MAIL_FROM, SECRET, World, cph

FIRM = "firm-cli"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sink() -> Iterator[tuple[int, SinkHandler]]:
    port = free_port()
    controller, handler = start_sink(port)
    yield port, handler
    controller.stop()


def cli(store_url: str, smtp_port: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFIER_", "SMTP_", "KAFKA_"))}
    env.update(NOTIFIER_DB=store_url, SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp_port), MAIL_FROM=MAIL_FROM,
               NOTIFIER_UNSUBSCRIBE_SECRET=SECRET, NOTIFIER_PUBLIC_URL="https://notifier.test",
               PORTAL_BASE_URL="https://portal.test", KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    return subprocess.run([sys.executable, "-m", "services.notifier", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def seed(world: World) -> None:
    world.member(FIRM, "ada", role="admin", locale="en", name="Ada Admin")
    world.member(FIRM, "chloe", locale="fr", name="Chloé Comptable")
    world.client(FIRM, "acme", name="Acme ApS", accountants=("chloe",))
    world.figures(FIRM, "acme", "1234.50", "EUR", missing=7, ready=3)
    world.prefer(FIRM, "acme", "ada", "weekly")
    world.prefer(FIRM, "acme", "chloe", "daily")


def test_digests_run_sends_each_digest_once_however_often_it_runs(tmp_path: Path, sink: tuple[int, SinkHandler]
                                                                  ) -> None:
    port, handler = sink
    url = f"sqlite:///{tmp_path / 'notifier.db'}"
    seed(World(url))
    at = cph(2026, 1, 12).isoformat()
    first = cli(url, port, "digests", "run", "--at", at)
    assert first.returncode == 0, first.stderr
    assert "2 made, covering 2 preference(s)" in first.stdout and "2 sent, 0 failed" in first.stdout
    second = cli(url, port, "digests", "run", "--at", at)
    assert second.returncode == 0, second.stderr
    assert "0 made" in second.stdout and "0 sent" in second.stdout
    ids = {digest_message_id(u, cph(2026, 1, 12), MAIL_FROM, partner_id=FIRM) for u in ("ada", "chloe")}
    mine = [m for m in handler.messages if m["Message-ID"] in ids]
    assert sorted(str(m["To"]) for m in mine) == ["Ada Admin <ada@firm.test>", "Chloé Comptable <chloe@firm.test>"]
    chloe = next(m for m in mine if "chloe" in str(m["To"]))
    assert chloe["Content-Language"] == "fr"
    body = chloe.get_body(("plain",))
    assert body is not None
    assert "1 234,50" in body.get_content().replace("\u202f", " ").replace("\xa0", " ")


def test_digests_preview_prints_the_next_digest_and_writes_nothing(tmp_path: Path,
                                                                   sink: tuple[int, SinkHandler]) -> None:
    port, handler = sink
    path = tmp_path / "notifier.db"
    world = World(f"sqlite:///{path}")
    seed(world)
    head, count = world.head(), len(handler.messages)
    shown = cli(f"sqlite:///{path}", port, "digests", "preview", "--user", "chloe", "--at", cph(2026, 1, 8).isoformat())
    assert shown.returncode == 0, shown.stderr
    assert "due 2026-01-12T10:00:00+01:00" in shown.stdout
    assert "Subject: Vos mises à jour clients du 12 janvier 2026" in shown.stdout
    assert "List-Unsubscribe: <https://notifier.test/unsubscribe/" in shown.stdout
    assert "Acme ApS" in shown.stdout and "Reçus manquants" in shown.stdout
    assert World(f"sqlite:///{path}").head() == head and len(handler.messages) == count
    nobody = cli(f"sqlite:///{path}", port, "digests", "preview", "--user", "nobody")
    assert nobody.returncode == 0 and "no digest" in nobody.stdout


def test_the_cli_explains_itself_and_refuses_bad_input(tmp_path: Path, sink: tuple[int, SinkHandler]) -> None:
    port, _ = sink
    url = f"sqlite:///{tmp_path / 'notifier.db'}"
    helped = cli(url, port, "digests", "run", "--help")
    assert helped.returncode == 0 and "--at RFC3339" in helped.stdout and "idempotent" not in helped.stderr
    naive = cli(url, port, "digests", "run", "--at", "2026-01-12T10:00:00")
    assert naive.returncode == 2 and "has no offset" in naive.stderr
    missing = cli(f"sqlite:///{tmp_path / 'absent.db'}", port, "digests", "preview", "--user", "x")
    assert missing.returncode == 3 and "no store" in missing.stderr


def test_digests_run_keeps_mail_due_when_the_smtp_server_is_down(tmp_path: Path, sink: tuple[int, SinkHandler]
                                                                 ) -> None:
    port, handler = sink
    url = f"sqlite:///{tmp_path / 'notifier.db'}"
    seed(World(url))
    at = cph(2026, 1, 12).isoformat()
    down = cli(url, free_port(), "digests", "run", "--at", at)
    assert down.returncode == 1 and "unavailable" in down.stdout and "2 made" in down.stdout
    before = len(handler.messages)
    up = cli(url, port, "digests", "run", "--at", at)
    assert up.returncode == 0 and "0 made" in up.stdout and "2 sent" in up.stdout
    assert len(handler.messages) == before + 2
