"""On-call output that greps: piped, `deliveries` and `events show` print one record per line,
tab-separated and untruncated (rich would draw a table wrapped at 80 columns); `--json` stays
JSON."""

from __future__ import annotations

import json
from pathlib import Path

from services.notifier.emails.render import digest_message_id
from tests.notifier.test_cli import FIRM, cli
from tests.notifier.world import MAIL_FROM, World, cph

LONG_NAME = "Anne-Sophie de La Rochefoucauld-Montmorency, directrice administrative et financière"
LONG_CLIENT = "Société Générale des Brasseries Réunies de Bretagne et du Grand Ouest (SGBRBGO) SA"


def records(stdout: str) -> dict[str, list[list[str]]]:
    """The tables of a piped command: `# title`, then the column names, then one row per line."""
    tables: dict[str, list[list[str]]] = {}
    current: list[list[str]] = []
    for line in stdout.splitlines():
        if line.startswith("# "):
            current = tables.setdefault(line[2:], [])
        elif line:
            current.append(line.split("\t"))
    return tables


def test_piped_deliveries_and_events_show_print_one_untruncated_record_per_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'notifier.db'}"
    world = World(url)
    world.member(FIRM, "anne", role="admin", locale="fr", name=LONG_NAME)
    world.client(FIRM, "sgb", name=LONG_CLIENT)
    world.figures(FIRM, "sgb", "249055.88", "DKK", missing=7, ready=3)
    world.prefer(FIRM, "sgb", "anne", "weekly")
    at = cph(2026, 1, 12)
    # Made due and not sent (no SMTP server is asked): a delivery to show.
    made = cli(url, 1, "digests", "run", "--at", at.isoformat(), "--no-send")
    assert made.returncode == 0 and "1 made" in made.stdout, made.stderr

    shown = cli(url, 1, "deliveries", "--user", "anne")
    assert shown.returncode == 0, shown.stderr
    (title, rows), = records(shown.stdout).items()
    assert title.startswith("emails for user anne: 1")
    header, row = rows
    assert header == ["due at", "kind", "recipient", "clients", "state", "attempts", "outcome", "updated",
                      "message id"]
    assert len(row) == len(header)
    assert row[2] == f"{LONG_NAME} <anne@firm.test> [anne]"
    assert row[4] == "due"
    assert row[8] == digest_message_id("anne", at, MAIL_FROM, partner_id=FIRM)
    assert all(len(line.split("\t")) in (1, len(header)) for line in shown.stdout.splitlines())

    history = cli(url, 1, "events", "show", "--client", "sgb")
    assert history.returncode == 0, history.stderr
    tables = records(history.stdout)
    inbound = next(rows for title, rows in tables.items() if title.startswith("inbound events about sgb"))
    assert inbound[0] == ["at", "type", "outcome", "reason", "position", "id"]
    assert {r[1] for r in inbound[1:]} >= {"client.onboarding_started.v1", "client.metrics_updated.v1"}
    stored = [rows for title, rows in tables.items() if "ClientFile" in title]
    assert stored and any(LONG_CLIENT in row[3] for row in stored[0][1:])  # the fields, whole, on one line

    as_json = cli(url, 1, "deliveries", "--user", "anne", "--json")
    assert json.loads(as_json.stdout)["deliveries"][0]["recipient"] == f"{LONG_NAME} <anne@firm.test>"
