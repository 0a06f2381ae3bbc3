"""The checker: once the faults have stopped and every consumer is at the end of its topics,
compare what the system holds with the model's fold of the acknowledged history."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from services.notifier.emails import digest_message_id, reminder_message_id
from tests.chaos import probe
from tests.chaos.cluster import MAIL_FROM, Mail, auth
from tests.chaos.model import Model, Owed


@dataclass
class Verdict:
    failures: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # worth a look, not a verdict
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, what: str, details: list[str] | None = None, limit: int = 8) -> None:
        shown = (details or [])[:limit]
        more = f" (+{len(details) - limit} more)" if details and len(details) > limit else ""
        self.failures.append(what + (":\n    " + "\n    ".join(shown) + more if shown else ""))


def message_id(owed: Owed) -> str:
    return digest_message_id(owed.user, datetime.fromisoformat(owed.key), MAIL_FROM, partner_id=owed.partner)


def walk(http: httpx.Client, url: str, f: str, user: str, role: str, tab: str) -> tuple[int, list[dict[str, Any]]]:
    """Every item of a tab, paged to the end (a small page, so most tabs take several)."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"tab": tab, "limit": 7, **({"cursor": cursor} if cursor else {})}
        response = http.get(f"{url}/v1/clients", params=params, headers=auth(user, f, role))
        if response.status_code != 200:
            return response.status_code, items
        page = response.json()
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return 200, items


def normal(item: dict[str, Any]) -> dict[str, Any]:
    keep = ("client_id", "name", "status", "missing_receipts", "ready_to_export", "wallet_balance")
    return {**{k: item.get(k) for k in keep},
            "accountants": sorted((a["user_id"], a["name"]) for a in item.get("accountants", []))}


def check_tabs(verdict: Verdict, model: Model, urls: list[str]) -> None:
    wrong: list[str] = []
    walked = items = 0
    with httpx.Client(timeout=30) as http:
        for n, ((f, user), member) in enumerate(sorted(model.members.items())):
            url = urls[n % len(urls)]  # both instances answer for the same store
            if not member.active:
                status, _ = walk(http, url, f, user, "accountant", "mine")
                if status != 403:
                    wrong.append(f"{user} (removed) GET mine -> {status}, want 403")
                continue
            for tab in model.tabs_of(f, user):
                status, got = walk(http, url, f, user, member.role, tab)
                walked += 1
                items += len(got)
                want = [model.item(f, c) for c in model.tab(f, user, tab)]
                if status != 200:
                    wrong.append(f"{user} tab {tab} -> {status}")
                    continue
                got_n = [normal(i) for i in got if (f, i["client_id"]) not in model.unsure_clients]
                want = [i for i in want if (f, i["client_id"]) not in model.unsure_clients]
                if got_n != want:
                    got_by = {i["client_id"]: i for i in got_n}
                    want_by = {i["client_id"]: i for i in want}
                    for c in sorted(set(got_by) | set(want_by)):
                        if got_by.get(c) != want_by.get(c):
                            wrong.append(f"{user} tab {tab} client {c}: got {got_by.get(c)} want {want_by.get(c)}")
                    got_ids, want_ids = [i["client_id"] for i in got_n], [i["client_id"] for i in want]
                    if set(got_ids) == set(want_ids) and got_ids != want_ids:
                        wrong.append(f"{user} tab {tab}: order {[i['client_id'] for i in got_n]} "
                                     f"want {[i['client_id'] for i in want]}")
    verdict.figures["tabs walked"] = walked
    verdict.figures["items compared"] = items
    if wrong:
        verdict.fail(f"tabs differ from the model ({len(wrong)})", wrong)


def check_mail(verdict: Verdict, model: Model, mails: list[Mail], duplicate_budget: int,
               emails: dict[tuple[str, str], str]) -> None:
    seen = Counter(m.message_id for m in mails)
    owed = {message_id(o): (o.partner, o.user, f"digest {o.user} due {o.key}") for o in model.owed}
    missing = [why for mid, (_, _, why) in owed.items() if mid not in seen]
    wrong_recipients = []
    for reminder in model.reminders:
        users = sorted({u for candidate in reminder.candidates for u in candidate})
        ids = {u: reminder_message_id(reminder.reminder_id, u, MAIL_FROM) for u in users}
        for user, mid in ids.items():
            owed[mid] = (reminder.partner, user, f"reminder {reminder.reminder_id} to {user}")
        got = tuple(u for u in users if ids[u] in seen)
        if got not in reminder.candidates:
            wrong_recipients.append(f"reminder {reminder.reminder_id} on {reminder.client} reached {list(got)}; "
                                    f"the accountants since its 202 were {reminder.candidates}")
    unexpected = {m.message_id: m for m in mails if m.message_id not in owed}
    # A reminder whose 202 was lost may have been sent: allow reminders of unknown ids up to
    # what those could have made (pool A has three accountants); never digests.
    allowance = sum(model.unsure_reminders.values()) * 3
    strays = [f"{mid} to {m.to} ({m.subject})" for mid, m in unexpected.items()
              if not (mid.startswith("<reminder-") and allowance > 0)]
    unsure_sent = len(unexpected) - len(strays)
    wrong_to = [f"{m.message_id} to {m.to}, want {emails.get(o[:2])}" for m in mails
                if (o := owed.get(m.message_id)) is not None and emails.get(o[:2], "?") not in m.to]
    duplicates = sum(n - 1 for n in seen.values())
    verdict.figures.update({
        "reminders answered 202": len(model.reminders),
        "digests owed": len(model.owed),
        "emails received": len(mails), "emails lost": len(missing), "emails duplicated": duplicates,
        "duplicate budget (notifier kills + SMTP faults + database restarts)": duplicate_budget,
        "reminders with a lost answer": sum(model.unsure_reminders.values()),
        "emails of those sent": unsure_sent,
    })
    if missing:
        verdict.fail(f"{len(missing)} digests owed were never received", missing)
    if wrong_recipients:
        verdict.fail(f"{len(wrong_recipients)} reminders reached the wrong accountants", wrong_recipients)
    if strays or unsure_sent > allowance:
        verdict.fail(f"{len(strays)} emails nobody owed", strays)
    if wrong_to:
        verdict.fail("emails to the wrong address", wrong_to)
    if duplicates > duplicate_budget:
        verdict.fail(f"{duplicates} duplicate emails, more than one per crash, SMTP fault or database restart "
                     f"({duplicate_budget})",
                     [f"{mid} x{n}" for mid, n in seen.items() if n > 1])


def check_reminder_history(verdict: Verdict, model: Model, urls: list[str], mails: list[Mail]) -> None:
    """The client directory's reminder history (GET /v1/clients/{id}/reminders) against the
    emails: `sent` exactly for the recipients whose email arrived. A recipient still `pending`
    at rest is counted and shown (a finding, see docs/RELIABILITY.md), not failed."""
    received = {m.message_id for m in mails}
    by_client: dict[tuple[str, str], set[str]] = {}
    for reminder in model.reminders:
        by_client.setdefault((reminder.partner, reminder.client), set()).add(reminder.reminder_id)
    wrong, pending, compared = [], [], 0
    with httpx.Client(timeout=30) as http:
        for n, ((f, client), ids) in enumerate(sorted(by_client.items())):
            response = http.get(f"{urls[n % len(urls)]}/v1/clients/{client}/reminders", params={"limit": 200},
                                headers=auth(f"{f}-a0", f, "admin"))
            if response.status_code != 200:
                wrong.append(f"{client}: GET reminders -> {response.status_code}")
                continue
            for item in response.json()["items"]:
                rid = item["reminder_id"]
                if rid not in ids:
                    continue
                compared += 1
                sent = {d["user_id"] for d in item["deliveries"] if d["status"] == "sent"}
                arrived = {d["user_id"] for d in item["deliveries"]
                           if reminder_message_id(rid, d["user_id"], MAIL_FROM) in received}
                if sent != arrived:
                    wrong.append(f"reminder {rid} on {client}: history says sent to {sorted(sent)}, "
                                 f"emails arrived for {sorted(arrived)}")
                pending += [f"reminder {rid} on {client}: {d['user_id']} pending"
                            for d in item["deliveries"] if d["status"] == "pending"]
    verdict.figures["reminder histories compared"] = compared
    verdict.figures["reminder-history recipients still pending at rest"] = len(pending)
    if pending:
        verdict.findings.append(f"{len(pending)} reminder-history recipients still pending at rest "
                                f"(e.g. {pending[:2]})")
    if wrong:
        verdict.fail(f"the reminder history disagrees with the emails ({len(wrong)})", wrong)


def check_dead_letters(verdict: Verdict, bootstrap: str, history: list[dict[str, Any]]) -> None:
    poison = {(e["topic"], e["partition"], e["offset"]) for e in history if e["kind"] == "event" and e.get("poison")}
    letters: Counter[tuple[str, int, int]] = Counter()
    for topic in probe.PLATFORM_TOPICS:
        letters.update(probe.dead_letters(bootstrap, topic))
    verdict.figures["poison records sent"] = len(poison)
    verdict.figures["dead letters"] = sum(letters.values())
    if set(letters) != poison:
        verdict.fail("the dead-letter topics do not hold exactly the poison records", [
            *(f"not dead-lettered: {p}" for p in sorted(poison - set(letters))),
            *(f"dead-lettered but valid: {p}" for p in sorted(set(letters) - poison))])
    # Both services consume the platform topics and dead-letter into the same topics.
    short = [f"{p} x{letters[p]}" for p in sorted(poison) if 0 < letters[p] < 2]
    if short:
        verdict.fail("poison records dead-lettered by one service only", short)


def check_stores(verdict: Verdict, bootstrap: str, cd: probe.Store, nt: probe.Store,
                 history: list[dict[str, Any]], mails: list[Mail]) -> None:
    problems: list[str] = []
    for store, topics in ((cd, probe.CD_TOPICS), (nt, probe.NT_TOPICS)):
        behind = probe.consumed_to_end(store, probe.end_offsets(bootstrap, list(topics)))
        problems += [f"{store.events}: {b}" for b in behind]
        tracked = store.tracking()
        outbox = store.head(probe.OUTBOX_TOPIC)
        if tracked.get("outbox:kafka", 0) < outbox:
            problems.append(f"{store.events}: outbox relayed to {tracked.get('outbox:kafka', 0)} of {outbox}")
    head = cd.head()
    if cd.tracking().get("projection:clients", 0) < head:
        problems.append(f"projection at {cd.tracking().get('projection:clients', 0)} of {head}")
    # No event applied twice, none lost: one inbox row per distinct id each consumer read.
    valid = {e["id"] for e in history if e["kind"] == "event" and not e.get("poison")}
    portal_notifications = probe.event_ids(bootstrap, "portal.notifications")
    portal_directory = probe.event_ids(bootstrap, "portal.client-directory")
    # The client directory marks the ids it publishes received (its own come back to it).
    deliveries_ids = probe.event_ids(bootstrap, "portal.notification-deliveries")
    want_cd = len(valid | portal_notifications | portal_directory | deliveries_ids)
    want_nt = len(valid | portal_notifications | portal_directory)
    got_cd, got_nt = cd.inbox_count(), nt.inbox_count()
    verdict.figures["inbox rows (client_directory, notifier)"] = f"{got_cd}, {got_nt}"
    if got_cd != want_cd:
        problems.append(f"client_directory inbox has {got_cd} ids, {want_cd} distinct were sent")
    if got_nt != want_nt:
        problems.append(f"notifier inbox has {got_nt} ids, {want_nt} distinct were sent")
    # Every email made due has its outcome, and was announced on portal.notification-deliveries.
    deliveries = nt.topic_counts("notifier:Delivery.%")
    due = deliveries.get("notifier:Delivery.Due", 0)
    ended = deliveries.get("notifier:Delivery.Sent", 0) + deliveries.get("notifier:Delivery.Failed", 0)
    verdict.figures["deliveries due, sent or failed"] = f"{due}, {ended}"
    if due != ended:
        problems.append(f"{due} deliveries due, {ended} with an outcome")
    announced = set(probe.sent_message_ids(bootstrap))
    received = {m.message_id for m in mails}
    if announced != received:
        problems.append(f"email_sent published for {len(announced)} Message-IDs, the server got {len(received)}; "
                        f"unannounced {sorted(received - announced)[:3]}, "
                        f"never received {sorted(announced - received)[:3]}")
    if problems:
        verdict.fail("positions, inboxes or outboxes inconsistent", problems)
