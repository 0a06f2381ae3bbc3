"""The digest scheduler: at each due time, one due Delivery per recipient covering every
client that recipient enabled with a frequency due then, and each covered preference marked
in the same transaction.

- Which preferences are due comes from the schedule index (`next_due <= now`); the
  Preference aggregates decide (`due_slot`), so a stale row never sends anything wrong.
- A recipient whose preferences missed several due times (the service was down) gets one
  catch-up digest, at the latest of them: one email per recipient per run, not per slot.
- The Message-ID derives from (firm, recipient, due time) and the Delivery id from the
  Message-ID, so running the scheduler twice for the same instant makes nothing twice.
- A client the recipient may no longer see (domain/recipients.py) is left out, and its
  preference is marked skipped for that due time so it is not looked at again until the next.
- Recipients are made a batch at a time: their preferences, members, clients and any digest
  already made are loaded in a few queries, and the batch is recorded in one transaction.
  When that transaction conflicts (another run, or a setting that arrived meanwhile), each
  recipient of the batch is made again on its own, from fresh aggregates, as before.
  Recording several digests at once changes nothing for the emails: they are only made due
  here, and the sender records each outcome on its own.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from events.store import EventStoreApplication
from services.notifier.application.notifier import figures_of, recipient_of
from services.notifier.domain.model import (
    ClientFile,
    Delivery,
    Member,
    Preference,
    client_key,
    delivery_key,
    member_key,
)
from services.notifier.domain.recipients import digest_exclusion
from services.notifier.domain.schedule import due_slot, next_due
from services.notifier.emails.render import digest_message_id
from services.notifier.projections.schedule import ScheduleIndex

log = logging.getLogger("notifier.digests")

ALREADY_SENT = "a digest for this recipient and due time was already made"
BATCH = 200  # recipients made per transaction


@dataclass
class DigestRun:
    """What one run of the scheduler did."""

    at: datetime
    digests: int = 0  # due deliveries made
    covered: int = 0  # preferences covered by them
    skipped: int = 0  # due preferences left out (recipient may not see the client)
    message_ids: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"digests as of {self.at.isoformat()}: {self.digests} made, covering {self.covered} "
                f"preference(s); {self.skipped} skipped")

    def add(self, other: DigestRun) -> None:
        self.digests += other.digests
        self.covered += other.covered
        self.skipped += other.skipped
        self.message_ids += other.message_ids


@dataclass(frozen=True)
class DigestPlan:
    """One recipient's digest for one due time, before it is recorded."""

    partner_id: str
    user_id: str
    due_at: datetime
    message_id: str
    member: Member | None
    included: list[tuple[Preference, ClientFile]]
    excluded: list[tuple[Preference, str]]

    def delivery(self) -> Delivery:
        assert self.member is not None and self.included
        return Delivery(
            message_id=self.message_id, kind="digest", partner_id=self.partner_id, user_id=self.user_id,
            client_ids=[client.client_id for _, client in self.included],
            content={
                "recipient": recipient_of(self.member),
                "due_at": self.due_at.isoformat(),
                "clients": [figures_of(client) for _, client in self.included],
            },
        )


class DigestScheduler:
    def __init__(self, notifier: EventStoreApplication, index: ScheduleIndex, *, mail_from: str) -> None:
        self.notifier = notifier
        self.index = index
        self.mail_from = mail_from

    # --- running ----------------------------------------------------------------------------------

    def run(self, now: datetime) -> DigestRun:
        """Make every digest due at `now` that is not made yet. Safe to run again, and from
        several processes at once (the store refuses the second copy of anything)."""
        result = DigestRun(at=now)
        seen: set[UUID] = set()
        while True:
            catch_up(self.index)
            rows = [r for r in self.index.due(now) if r.preference_id not in seen]
            if not rows:
                return result
            by_recipient: dict[tuple[str, str], list[UUID]] = defaultdict(list)
            for row in rows:
                seen.add(row.preference_id)
                by_recipient[(row.partner_id, row.user_id)].append(row.preference_id)
            recipients = list(by_recipient.items())
            for start in range(0, len(recipients), BATCH):
                self._make_batch(recipients[start:start + BATCH], now, result)

    def _make_batch(self, recipients: list[tuple[tuple[str, str], list[UUID]]], now: datetime,
                    result: DigestRun) -> None:
        """Make these recipients' digests with a few queries and one transaction; on a conflict,
        one recipient at a time (`_make`)."""
        loaded = self.notifier.load(i for _, ids in recipients for i in ids)
        due_at_of: dict[tuple[str, str], datetime] = {}
        due_of: dict[tuple[str, str], list[Preference]] = {}
        for key, ids in recipients:
            preferences = [p for i in ids if (p := loaded.get(i)) is not None]
            due = {p.id: slot for p in preferences if (slot := slot_at(p, now)) is not None}
            if due:  # else: covered meanwhile (another run), disabled, or the row was stale
                due_at_of[key] = max(due.values())
                due_of[key] = [p for p in preferences if p.id in due]
        wanted = {member_key(*key) for key in due_of}
        wanted |= {client_key(p.partner_id, p.client_id) for preferences in due_of.values() for p in preferences}
        found = self.notifier.load(wanted)
        cache: dict[UUID, Any | None] = {i: found.get(i) for i in wanted}
        plans = [self.plan(*key, preferences, due_at_of[key], cache, cache) for key, preferences in due_of.items()]
        made_already = self.notifier.load(delivery_key(plan.message_id) for plan in plans if plan.included)
        changes: list[Any] = []
        outcome = DigestRun(at=now)
        for plan in plans:
            made = self._apply(plan, delivery_key(plan.message_id) in made_already, outcome)
            changes += [*due_of[(plan.partner_id, plan.user_id)], *([made] if made else [])]
        try:
            self.notifier.record(*changes)
        except IntegrityError:
            # A concurrent run or a new setting got there first: each recipient on its own, afresh.
            clients: dict[UUID, ClientFile | None] = {}
            for (partner_id, user_id), ids in recipients:
                self._make(partner_id, user_id, ids, now, clients, result)
            return
        result.add(outcome)

    def _make(self, partner_id: str, user_id: str, preference_ids: list[UUID], now: datetime,
              clients: dict[UUID, ClientFile | None], result: DigestRun) -> None:
        for _ in range(5):
            preferences = [p for p in (self._get(i) for i in preference_ids) if p is not None]
            due = {p.id: slot for p in preferences if (slot := slot_at(p, now)) is not None}
            if not due:
                return  # covered meanwhile (another run), disabled, or the row was stale
            due_at = max(due.values())
            plan = self.plan(partner_id, user_id, [p for p in preferences if p.id in due], due_at, clients)
            outcome = DigestRun(at=now)
            made_already = bool(plan.included) and delivery_key(plan.message_id) in self.notifier.repository
            made = self._apply(plan, made_already, outcome)
            changed = [p for p in preferences if p.id in due]
            try:
                self.notifier.record(*changed, *([made] if made else []))
            except IntegrityError:
                continue  # a concurrent run or a new setting got there first: look again
            result.add(outcome)
            return
        log.warning("gave up making the digest of %s/%s at %s after repeated conflicts",
                    partner_id, user_id, now.isoformat())

    @staticmethod
    def _apply(plan: DigestPlan, made_already: bool, outcome: DigestRun) -> Delivery | None:
        """Change the plan's preferences (covered, or skipped with the reason) and return the
        Delivery to record, if any; `outcome` counts what that makes once it is recorded."""
        made: Delivery | None = None
        skips = list(plan.excluded)
        if plan.included and made_already:
            # This due time's digest exists already (a preference arrived late, after its
            # run): move the schedule on rather than send a second email with the same id.
            skips += [(preference, ALREADY_SENT) for preference, _ in plan.included]
        elif plan.included:
            made = plan.delivery()
            for preference, _ in plan.included:
                preference.cover(plan.due_at)
            outcome.digests += 1
            outcome.covered += len(plan.included)
            outcome.message_ids.append(plan.message_id)
        for preference, why in skips:
            preference.skip(plan.due_at, why)
        outcome.skipped += len(skips)
        return made

    # --- planning (shared with the preview) -------------------------------------------------------

    def plan(self, partner_id: str, user_id: str, preferences: list[Preference], due_at: datetime,
             clients: dict[UUID, ClientFile | None] | None = None,
             members: dict[UUID, Member | None] | None = None) -> DigestPlan:
        """Who gets which of these preferences' clients at `due_at`, with the figures of now.
        `clients` and `members`, by aggregate id, are caches (what is missing is loaded)."""
        cache = clients if clients is not None else {}
        key = member_key(partner_id, user_id)
        member: Member | None = members[key] if members is not None and key in members else self._get(key)
        included: list[tuple[Preference, ClientFile]] = []
        excluded: list[tuple[Preference, str]] = []
        for preference in sorted(preferences, key=lambda p: p.client_id):
            key = client_key(partner_id, preference.client_id)
            if key not in cache:
                cache[key] = self._get(key)
            client = cache[key]
            reason = digest_exclusion(member, client)
            if reason is None:
                assert client is not None
                included.append((preference, client))
            else:
                excluded.append((preference, reason))
        message_id = digest_message_id(user_id, due_at, self.mail_from, partner_id=partner_id)
        return DigestPlan(partner_id, user_id, due_at, message_id, member, included, excluded)

    def next_digest(self, partner_id: str, user_id: str, at: datetime) -> DigestPlan | None:
        """The digest this recipient gets next as of `at` (read only): the one due now if any
        is (a catch-up), else the one at their earliest future due time."""
        ids = {r.preference_id for r in self.index.of_user(partner_id, user_id)}
        ids |= set(unindexed_preferences(self.index, partner_id, user_id))
        preferences = [p for p in (self._get(i) for i in sorted(ids)) if p is not None]
        preferences = [p for p in preferences if p.email_enabled and p.set_at is not None]
        if not preferences:
            return None
        due = {p.id: slot for p in preferences if (slot := slot_at(p, at)) is not None}
        if due:
            due_at = max(due.values())
            chosen = [p for p in preferences if p.id in due]
        else:
            upcoming = {p.id: next_due(p.frequency, p.set_at, p.last_covered) for p in preferences}
            due_at = min(upcoming.values())
            chosen = [p for p in preferences if upcoming[p.id] == due_at]
        return self.plan(partner_id, user_id, chosen, due_at)

    def _get(self, aggregate_id: UUID) -> Any | None:
        try:
            return self.notifier.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None


def slot_at(preference: Preference, now: datetime) -> datetime | None:
    if not preference.email_enabled or preference.set_at is None:
        return None
    return due_slot(preference.frequency, preference.set_at, preference.last_covered, now)


def catch_up(index: ScheduleIndex) -> None:
    """Bring the index up to date; another process applying the same batch is no error."""
    for _ in range(5):
        try:
            index.catch_up()
            return
        except IntegrityError:
            continue
    index.catch_up()


def unindexed_preferences(index: ScheduleIndex, partner_id: str | None, user_id: str) -> dict[UUID, str]:
    """Preferences of the user (in one firm, or any) created after the index's position, by id
    with their firm (read only: nothing is written)."""
    found: dict[UUID, str] = {}
    start = index.position()
    while True:
        batch = index.app.recorder.select_notifications(
            start=start, limit=1000, topics=[Preference.Created.TOPIC], inclusive_of_start=False
        )
        if not batch:
            return found
        for notification in batch:
            created: Any = index.app.mapper.to_domain_event(notification)
            if created.user_id == user_id and partner_id in (None, created.partner_id):
                found[created.originator_id] = created.partner_id
        start = batch[-1].id


def partners_of(index: ScheduleIndex, user_id: str) -> list[str]:
    """The firms in which the user has email preferences (read only)."""
    return sorted(set(index.partners_of(user_id)) | set(unindexed_preferences(index, None, user_id).values()))
