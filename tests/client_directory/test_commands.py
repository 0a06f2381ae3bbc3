"""The portal's commands: each records its change and the event it publishes in one
transaction (the outbox), and refuses what the client's state or the firm does not allow."""

from __future__ import annotations

from typing import Any

import pytest

from events.outbox import CREATED_TOPIC
from services.client_directory.application.directory import (
    CommandRejected,
    IdempotencyKeyReused,
    NotAMember,
)
from services.client_directory.domain.model import assignments_key, client_key
from tests.client_directory.support import (
    Directory,
    accountant,
    admin,
    connected,
    disconnected,
    firm,
    invited,
    member_added,
    member_removed,
    onboarding,
)


def published(directory: Directory, partner: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(topic, type, data) of every message the outbox holds for the firm, in log order."""
    out = []
    for n in directory.app.recorder.select_notifications(start=1, limit=100_000, topics=[CREATED_TOPIC]):
        message: Any = directory.app.mapper.to_domain_event(n)
        if message.cloud_event["partnerid"] == partner:
            out.append((message.topic, message.cloud_event["type"], message.cloud_event["data"]))
    return out


@pytest.fixture
def f(directory: Directory) -> str:
    partner = firm()
    directory.send(member_added(partner, "ada", "Ada", role="admin"), member_added(partner, "chloe", "Chloé"))
    return partner


def test_accepting_an_invitation_connects_the_client_and_publishes_it(directory: Directory, f: str) -> None:
    directory.send(invited(f, "c1", "Acme"))
    directory.app.accept_invitation(f, "c1", "ada")
    assert directory.ids(admin(f), "invitations") == []
    assert directory.ids(admin(f), "all") == ["c1"]
    assert published(directory, f) == [
        ("portal.client-directory", "client.invitation_accepted.v1", {"client_id": "c1", "by": "ada"})]


def test_declining_an_invitation_removes_it_and_publishes_it(directory: Directory, f: str) -> None:
    directory.send(invited(f, "c1", "Acme"))
    directory.app.decline_invitation(f, "c1", "ada")
    assert directory.client(admin(f), "c1") is None
    assert published(directory, f) == [
        ("portal.client-directory", "client.invitation_declined.v1", {"client_id": "c1", "by": "ada"})]


@pytest.mark.parametrize("state", ["onboarding", "connected"])
def test_only_a_pending_invitation_can_be_accepted_or_declined(directory: Directory, f: str, state: str) -> None:
    directory.send(onboarding(f, "c1", "Acme") if state == "onboarding" else connected(f, "c1", "Acme"))
    with pytest.raises(CommandRejected, match=f"client c1 has no pending invitation \\(it is {state}\\)"):
        directory.app.accept_invitation(f, "c1", "ada")
    with pytest.raises(CommandRejected):
        directory.app.decline_invitation(f, "c1", "ada")
    assert published(directory, f) == []


def test_commands_on_unknown_or_ended_clients_are_not_found(directory: Directory, f: str) -> None:
    directory.send(connected(f, "gone", "Gone"), disconnected(f, "gone"))
    app = directory.app
    for client_id in ("gone", "never"):
        with pytest.raises(LookupError):
            app.accept_invitation(f, client_id, "ada")
        with pytest.raises(LookupError):
            app.assign(f, client_id, "chloe")
        with pytest.raises(LookupError):
            app.request_reminder(f, client_id, "ada", ["wallet_balance"], "", None)


def test_assigning_records_the_assignment_once_and_publishes_it(directory: Directory, f: str) -> None:
    directory.send(connected(f, "c1", "Acme"))
    assert directory.app.assign(f, "c1", "chloe") is not None
    assert directory.app.assign(f, "c1", "chloe") is None  # PUT again: nothing new
    assert directory.ids(accountant(f, "chloe"), "mine") == ["c1"]
    assert directory.app.repository.get(assignments_key(f, "chloe")).clients == ["c1"]
    directory.app.unassign(f, "c1", "chloe")
    assert directory.app.unassign(f, "c1", "chloe") is None  # DELETE again: nothing new
    assert directory.ids(accountant(f, "chloe"), "mine") == []
    assert directory.app.repository.get(assignments_key(f, "chloe")).clients == []
    assert [(t, ty) for t, ty, _ in published(directory, f)] == [
        ("portal.client-directory", "client.accountant_assigned.v1"),
        ("portal.client-directory", "client.accountant_unassigned.v1"),
    ]


def test_only_members_of_the_firm_can_be_assigned(directory: Directory, f: str) -> None:
    other = firm()
    directory.send(connected(f, "c1", "Acme"), member_added(other, "stranger", "Stranger"),
                   member_added(f, "leaver", "Leaver"), member_removed(f, "leaver"))
    for user in ("stranger", "leaver", "nobody"):
        with pytest.raises(NotAMember, match=f"{user} is not a member of this firm"):
            directory.app.assign(f, "c1", user)
        with pytest.raises(NotAMember):
            directory.app.unassign(f, "c1", user)
    assert directory.app.repository.get(client_key(f, "c1")).accountants == []
    assert published(directory, f) == []


def test_a_notification_setting_is_recorded_shown_and_published(directory: Directory, f: str) -> None:
    directory.send(connected(f, "c1", "Acme"))
    directory.app.set_preference(f, "c1", "ada", True, "monthly")
    assert directory.client(admin(f), "c1")["notifications"] == {  # type: ignore[index]
        "email_enabled": True, "frequency": "monthly"}
    assert published(directory, f) == [("portal.notifications", "notification.preference_set.v1", {
        "client_id": "c1", "user_id": "ada", "email_enabled": True, "frequency": "monthly"})]


def test_a_reminder_with_the_same_idempotency_key_is_recorded_once(directory: Directory, f: str) -> None:
    directory.send(connected(f, "c1", "Acme"))
    first, written = directory.app.request_reminder(f, "c1", "ada", ["missing_receipts"], "Merci", "key-1")
    again, nothing = directory.app.request_reminder(f, "c1", "ada", ["missing_receipts"], "Merci", "key-1")
    assert (again, nothing) == (first, None) and written is not None
    other, _ = directory.app.request_reminder(f, "c1", "ada", ["missing_receipts"], "Merci", None)
    another, _ = directory.app.request_reminder(f, "c1", "ada", ["missing_receipts"], "Merci", None)
    assert len({first, other, another}) == 3
    # The key belongs to the admin who used it: another admin's same key is another reminder.
    bobs, _ = directory.app.request_reminder(f, "c1", "bob", ["missing_receipts"], "Merci", "key-1")
    assert bobs != first
    with pytest.raises(IdempotencyKeyReused):
        directory.app.request_reminder(f, "c1", "ada", ["wallet_balance"], "Merci", "key-1")
    reminders = [d for _, ty, d in published(directory, f) if ty == "notification.reminder_requested.v1"]
    assert [r["reminder_id"] for r in reminders] == [first, other, another, bobs]
    assert reminders[0] == {"reminder_id": first, "client_id": "c1", "requested_by": "ada",
                            "tasks": ["missing_receipts"], "comment": "Merci"}


def test_the_directory_does_not_apply_its_own_published_notifications_again(directory: Directory, f: str) -> None:
    """It consumes portal.notifications too: its own events come back and are duplicates."""
    from tests.client_directory.support import event

    directory.send(connected(f, "c1", "Acme"))
    directory.app.set_preference(f, "c1", "ada", True, "daily")
    (_, _, data), = published(directory, f)
    (notification,) = directory.app.recorder.select_notifications(start=1, limit=1000, topics=[CREATED_TOPIC])
    message: Any = directory.app.mapper.to_domain_event(notification)
    own_id = message.cloud_event["id"]
    before = directory.app.recorder.max_notification_id()
    directory.deliver([event("notification.preference_set.v1", f, event_id=own_id, **data)])
    stored = directory.app.recorder.select_notifications(start=before or 0, limit=10, inclusive_of_start=False)
    assert [n.topic for n in stored] == []  # only the tracking position moved


def test_a_command_racing_the_consumer_is_retried_on_the_new_state(directory: Directory, f: str) -> None:
    directory.send(invited(f, "c1", "Acme"))
    real_record = directory.app.record
    raced: list[bool] = []

    def record_after_a_rename(*aggregates: Any, **kwargs: Any) -> int | None:
        if not raced:  # the consumer saves the client first: our version is stale
            raced.append(True)
            from tests.client_directory.support import renamed

            directory.send(renamed(f, "c1", "Acme renamed"))
        return real_record(*aggregates, **kwargs)

    directory.app.record = record_after_a_rename  # type: ignore[method-assign]
    try:
        directory.app.accept_invitation(f, "c1", "ada")
    finally:
        directory.app.record = real_record  # type: ignore[method-assign]
    client: Any = directory.app.repository.get(client_key(f, "c1"))
    assert (client.status.value, client.name) == ("connected", "Acme renamed")
    assert len(published(directory, f)) == 1
