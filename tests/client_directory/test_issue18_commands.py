"""Issue 18 at the service layer (temporary SQLite, no broker): bulk assignment, the reminder
history with the notifier's outcomes, and the CSV export's rows and neutralisation."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.api import TabId
from services.client_directory.application.bulk import NotAMember, OverlappingIds, change_assignments
from services.client_directory.application.directory import ClientDirectory
from services.client_directory.application.export import header, neutralise, page_of
from services.client_directory.domain.reminders import mail_digest
from services.client_directory.projections.reminders import ReminderHistory
from services.notifier.emails.render import reminder_message_id
from tests.client_directory.support import (
    Directory,
    accountant,
    admin,
    assigned,
    connected,
    disconnected,
    event,
    firm,
    member_added,
    metrics,
)
from tests.client_directory.test_commands import published


@pytest.fixture
def f(directory: Directory) -> str:
    partner = firm()
    directory.send(member_added(partner, "ada", "Ada", role="admin"), member_added(partner, "chloe", "Chloé"),
                   member_added(partner, "otto", "Otto"))
    for i in range(4):
        directory.send(connected(partner, f"c{i}", f"Client {i}"))
    return partner


# --- bulk assignment -------------------------------------------------------------------------------


def test_bulk_assigns_and_unassigns_with_one_event_per_client_changed(directory: Directory, f: str) -> None:
    directory.send(assigned(f, "c0", "chloe"), assigned(f, "c3", "chloe"), disconnected(f, "c2"))
    before = len(published(directory, f))
    outcome = change_assignments(directory.app, f, "chloe", ["c0", "c1", "c2", "nope", "c1"], ["c3"])
    assert (outcome.assigned, outcome.unassigned, outcome.not_found) == (["c0", "c1"], ["c3"], ["c2", "nope"])
    sent = published(directory, f)[before:]
    assert [(t, d["client_id"]) for _, t, d in sent] == [
        ("client.accountant_assigned.v1", "c1"), ("client.accountant_unassigned.v1", "c3")]
    assert directory.ids(accountant(f, "chloe"), "mine") == ["c0", "c1"]

    again = change_assignments(directory.app, f, "chloe", ["c0", "c1"], ["c3"])
    assert (again.assigned, again.unassigned, again.notification_id) == (["c0", "c1"], ["c3"], None)
    assert len(published(directory, f)) == before + 2  # repeating it changes nothing


def test_bulk_refuses_a_non_member_and_an_id_in_both_lists(directory: Directory, f: str) -> None:
    with pytest.raises(NotAMember):
        change_assignments(directory.app, f, "stranger", ["c0"], [])
    with pytest.raises(OverlappingIds):
        change_assignments(directory.app, f, "chloe", ["c0"], ["c0"])
    assert change_assignments(directory.app, f, "stranger", [], ["c0"]).unassigned == ["c0"]  # nothing to undo


# --- reminder history ------------------------------------------------------------------------------


def outcome_event(partner: str, reminder_id: str | None, user: str, client: str, *, sent: bool,
                  with_id: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {"message_id": reminder_message_id(reminder_id or "", user, "n <no-reply@x.test>"),
                            "kind": "reminder", "user_id": user, "client_ids": [client]}
    if with_id:
        data["reminder_id"] = reminder_id
    if sent:
        return event("notification.email_sent.v1", partner, sent_at=datetime.now(UTC).isoformat(), **data)
    return event("notification.email_failed.v1", partner, code=550, reason="no such mailbox", **data)


def history(directory: Directory, partner: str, client: str) -> list[dict[str, Any]]:
    reminders = ReminderHistory(directory.app, directory.read_model)
    reminders.catch_up()
    return reminders.history(partner, client, lambda p, u: u.upper())


def test_a_reminder_is_pending_for_its_accountants_until_the_notifier_reports(directory: Directory, f: str) -> None:
    directory.send(assigned(f, "c0", "chloe"), assigned(f, "c0", "otto"))
    first, _ = directory.app.request_reminder(f, "c0", "ada", ["missing_receipts"], "", None)
    second, _ = directory.app.request_reminder(f, "c0", "ada", ["wallet_balance"], "Vite", None)
    items = history(directory, f, "c0")
    assert [i["reminder_id"] for i in items] == [second, first]  # newest first
    assert items[0]["requested_by"] == {"user_id": "ada", "name": "ADA"}
    assert items[0]["tasks"] == ["wallet_balance"] and items[0]["comment"] == "Vite"
    assert [(d["user_id"], d["status"]) for d in items[1]["deliveries"]] == [("chloe", "pending"), ("otto", "pending")]

    directory.send(outcome_event(f, first, "chloe", "c0", sent=True),
                   outcome_event(f, first, "otto", "c0", sent=False, with_id=False))  # matched by Message-ID
    deliveries = {d["user_id"]: d for d in history(directory, f, "c0")[1]["deliveries"]}
    assert (deliveries["chloe"]["status"], deliveries["otto"]["status"]) == ("sent", "failed")
    assert deliveries["chloe"]["at"] and deliveries["otto"]["name"] == "OTTO"


def test_outcomes_that_are_not_ours_are_rejected_and_digests_ignored(directory: Directory, f: str) -> None:
    directory.send(assigned(f, "c0", "chloe"))
    reminder, _ = directory.app.request_reminder(f, "c0", "ada", ["missing_receipts"], "", None)
    sent = outcome_event(f, reminder, "chloe", "c0", sent=True)
    unknown = outcome_event(f, str(uuid.uuid4()), "chloe", "c0", sent=True, with_id=False)
    digest = event("notification.email_sent.v1", f, message_id="<digest-1@x.test>", kind="digest", user_id="chloe",
                   client_ids=["c0"], sent_at=datetime.now(UTC).isoformat())
    directory.send(sent, unknown, digest, {**sent, "id": str(uuid.uuid4())})
    assert directory.outcome(sent) == ("applied", "")
    assert directory.outcome(digest) == ("applied", "")
    assert directory.outcome(unknown)[0] == "rejected"


def test_the_message_id_digest_is_the_notifiers() -> None:
    assert mail_digest("r-1", "chloe") in reminder_message_id("r-1", "chloe", "P <no-reply@portal.test>")


# --- export ------------------------------------------------------------------------------------------


def test_export_rows_and_neutralised_cells(directory: Directory, f: str) -> None:
    directory.send(connected(f, "=cmd", "=HYPERLINK(\"x\")"), connected(f, "plus", "+Plus"),
                   assigned(f, "plus", "chloe"), metrics(f, "plus", 3, amount="-12.50", ready=1))
    directory.projection.catch_up()
    body, cursor = page_of(directory.queries, admin(f), TabId.ALL, q=None, missing_receipts=False,
                           descending=False, cursor=None)
    rows = list(csv.reader(io.StringIO((header() + body).decode())))
    assert cursor is None and rows[0][0] == "client_id" and len(rows) == 7
    by_id = {r[0]: r for r in rows[1:]}
    assert by_id["'=cmd"][1] == "'=HYPERLINK(\"x\")"
    assert by_id["plus"] == ["plus", "'+Plus", "connected", "3", "1", "-12.50", "EUR", "Chloé"]
    assert [neutralise(v) for v in ("@a", "\tb", "\rc", "-d", "ok")] == ["'@a", "'\tb", "'\rc", "'-d", "ok"]


def test_the_message_id_digest_function_matches_for_odd_ids() -> None:
    for reminder, user in (("a,b", "c"), ("é", "ü/x"), ("", "")):
        assert mail_digest(reminder, user) in reminder_message_id(reminder, user, "P <n@portal.test>")


def test_reminder_history_is_recorded_with_the_command(directory: Directory, f: str) -> None:
    app: ClientDirectory = directory.app
    reminder, _ = app.request_reminder(f, "c1", "ada", ["missing_receipts"], "", "key-1")
    again, position = app.request_reminder(f, "c1", "ada", ["missing_receipts"], "", "key-1")
    assert (again, position) == (reminder, None)
    assert [i["reminder_id"] for i in history(directory, f, "c1")] == [reminder]
    assert history(directory, f, "c1")[0]["deliveries"] == []  # nobody assigned: nobody to wait for
