"""On-call views of the notifier's store: `events show` (a client's or member's history) and
`deliveries` (what was sent to whom, when, and how it ended). Read only: nothing is written,
published or sent."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any
from uuid import UUID

from events.ops import aggregate_history, console, inbox_history, print_aggregate, print_history, print_rows, scan
from services.notifier.application.notifier import Notifier
from services.notifier.domain.model import Delivery, Preference, Reminder, client_key, member_key

STATE_STYLES = {"failed": "red", "deferred": "yellow", "due": "cyan"}


# --- events show ----------------------------------------------------------------------------------

def show(notifier: Notifier, *, client: str | None, member: str | None, partner: str | None,
         as_json: bool = False) -> int:
    """The stored history of the notifier's aggregates about a client (its ClientFile, the
    members' preferences for it, its reminders) or a member (Member, preferences, reminders
    they requested), then every inbound event about it with its outcome."""
    subject = client or member
    assert subject is not None
    received = inbox_history(notifier, subject=subject, partner=partner)
    related: list[tuple[str, str, UUID]] = []  # (firm, label, aggregate id)
    for created in scan(notifier, [Preference.Created.TOPIC, Reminder.Requested.TOPIC], containing=subject,
                        what=f"looking for {subject}'s preferences and reminders"):
        if partner not in (None, created.partner_id):
            continue
        if isinstance(created, Preference.Created):
            if (client and created.client_id == client) or (member and created.user_id == member):
                related.append((created.partner_id, f"Preference {created.client_id}/{created.user_id}",
                                created.originator_id))
        elif (client and created.client_id == client) or (member and created.requested_by == member):
            related.append((created.partner_id, f"Reminder {created.reminder_id}", created.originator_id))
    firms = sorted({partner} if partner else {r["partner"] for r in received} | {f for f, _, _ in related})
    own = [(firm, "ClientFile" if client else "Member", client_key(firm, subject) if client
            else member_key(firm, subject)) for firm in firms]
    stored: dict[str, list[dict[str, str]]] = {}
    for firm, label, aggregate_id in own + related:
        rows = aggregate_history(notifier, aggregate_id)
        if rows:
            stored[f"{firm}/{label}"] = rows
    if not received and not stored:
        console.print(f"nothing is known about {subject}" + (f" in {partner}" if partner else ""))
        return 1
    if as_json:
        print(json.dumps({"stored_events": stored, "inbound_events": received}, indent=2, ensure_ascii=False))
        return 0
    for key, rows in stored.items():
        print_aggregate(rows, f"{key} ({len(rows)} events)")
    print_history(received, f"inbound events about {subject} (applied and rejected)")
    return 0


# --- deliveries -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeliveryRow:
    message_id: str
    kind: str
    partner_id: str
    user_id: str
    recipient: str
    client_ids: list[str]
    due_at: str  # a digest's due time; a reminder's: when it was recorded as due
    state: str  # due, sent, deferred, failed
    attempts: int
    outcome: str
    updated_at: str  # when it was sent or failed (the latest change)
    retry_at: str | None

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryRow:
        recipient = delivery.content.get("recipient", {})
        due_at = delivery.content.get("due_at") or delivery.created_on.isoformat(timespec="seconds")
        return cls(
            message_id=delivery.message_id, kind=delivery.kind, partner_id=delivery.partner_id,
            user_id=delivery.user_id, recipient=f"{recipient.get('name', '')} <{recipient.get('email', '')}>",
            client_ids=list(delivery.client_ids), due_at=due_at, state=delivery.state, attempts=delivery.attempts,
            outcome=delivery.outcome, updated_at=delivery.modified_on.isoformat(timespec="seconds"),
            retry_at=delivery.retry_at.isoformat(timespec="seconds") if delivery.retry_at else None,
        )


@dataclass(frozen=True)
class ReminderRow:
    reminder_id: str
    partner_id: str
    client_id: str
    requested_by: str
    requested_at: str
    tasks: list[str]
    state: str  # pending, dispatched, dropped
    recipients: list[str]
    reason: str

    @classmethod
    def of(cls, reminder: Reminder) -> ReminderRow:
        at = reminder.requested_at or reminder.created_on
        return cls(reminder.reminder_id, reminder.partner_id, reminder.client_id, reminder.requested_by,
                   at.isoformat(timespec="seconds"), list(reminder.tasks), reminder.state,
                   list(reminder.recipients), reminder.reason)


def find_deliveries(notifier: Notifier, *, client: str | None = None, user: str | None = None,
                    partner: str | None = None) -> tuple[list[DeliveryRow], list[ReminderRow]]:
    """Deliveries to the user (or naming the client), oldest first, and the reminders about the
    client (or requested by the user): a dropped reminder explains an email never made."""
    wanted = client or user
    assert wanted is not None
    delivery_ids: list[UUID] = []
    reminder_ids: list[UUID] = []
    for created in scan(notifier, [Delivery.Due.TOPIC, Reminder.Requested.TOPIC], containing=wanted,
                        what=f"looking for deliveries of {wanted}"):
        if partner not in (None, created.partner_id):
            continue
        if isinstance(created, Delivery.Due):
            if (user and created.user_id == user) or (client and client in created.client_ids):
                delivery_ids.append(created.originator_id)
        elif (client and created.client_id == client) or (user and created.requested_by == user):
            reminder_ids.append(created.originator_id)
    deliveries = [DeliveryRow.of(d) for d in _loaded(notifier, delivery_ids)]
    reminders = [ReminderRow.of(r) for r in _loaded(notifier, reminder_ids)]
    return deliveries, reminders


def _loaded(notifier: Notifier, ids: Iterable[UUID]) -> list[Any]:
    wanted = list(ids)
    found = notifier.load(wanted)
    return [found[i] for i in wanted if i in found]


def deliveries(notifier: Notifier, *, client: str | None, user: str | None, partner: str | None,
               as_json: bool = False) -> int:
    rows, reminders = find_deliveries(notifier, client=client, user=user, partner=partner)
    if as_json:
        print(json.dumps({"deliveries": [asdict(r) for r in rows], "reminders": [asdict(r) for r in reminders]},
                         indent=2, ensure_ascii=False))
        return 0
    about = f"client {client}" if client else f"user {user}"
    if not rows:
        console.print(f"no email was ever made for {about}" + (f" in {partner}" if partner else ""))
    else:
        counts = {state: sum(r.state == state for r in rows) for state in ("sent", "failed", "deferred", "due")}
        print_rows(f"emails for {about}: {len(rows)} "
                   f"({', '.join(f'{n} {state}' for state, n in counts.items() if n)})",
                   ("due at", "kind", "recipient", "clients", "state", "attempts", "outcome", "updated",
                    "message id"),
                   ([r.due_at, r.kind, f"{r.recipient} [{r.user_id}]", ", ".join(r.client_ids), r.state,
                     str(r.attempts),
                     r.outcome + (f" (retry at {r.retry_at})" if r.state == "deferred" and r.retry_at else ""),
                     r.updated_at, r.message_id] for r in rows),
                   [STATE_STYLES.get(r.state) for r in rows])
    if reminders:
        print_rows(f"reminders for {about}",
                   ("requested at", "reminder", "client", "by", "tasks", "state", "recipients", "reason"),
                   ([m.requested_at, m.reminder_id, m.client_id, m.requested_by, ", ".join(m.tasks), m.state,
                     ", ".join(m.recipients), m.reason] for m in reminders),
                   ["red" if m.state == "dropped" else None for m in reminders])
    return 0
