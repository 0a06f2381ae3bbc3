"""Who may receive what: the notifier's recipient rules, as plain functions of its aggregates.

Digest ("may see"), for one recipient and one client of the same firm:
- the recipient must be an active member of the firm (a removed member gets nothing);
- the client must be active: started (invited, onboarding, verification failed or connected)
  and not disconnected or declined;
- an admin may see every active client of the firm;
- an accountant may see a client only while assigned to it, and never an invited client
  (the Clients page does not show it to them either).

Reminder: every active member assigned to the client when the reminder is dispatched; the
requester must be an active admin of the firm and the client active.
"""

from __future__ import annotations

from services.notifier.domain.model import ClientFile, Member

INVITED = "invited"


def digest_exclusion(member: Member | None, client: ClientFile | None) -> str | None:
    """Why `member` may not get `client` in a digest, or None when they may."""
    if member is None or not member.active:
        return "the recipient is not a member of the firm"
    if client is None or not client.active:
        return "the client is not (or no longer) a client of the firm"
    if member.role == "admin":
        return None
    if member.user_id not in client.accountants:
        return "the accountant is not assigned to the client"
    if client.status == INVITED:
        return "accountants do not see invited clients"
    return None


def reminder_exclusion(requester: Member | None, client: ClientFile | None) -> str | None:
    """Why a reminder cannot be sent at all, or None when it can."""
    if client is None or not client.active:
        return "the client is not a client of the firm"
    if requester is None or not requester.active or requester.role != "admin":
        return "the requester is not an admin of the firm"
    return None


def reminder_recipients(client: ClientFile, members: dict[str, Member | None]) -> list[Member]:
    """The assigned accountants who are still active members, in assignment order."""
    chosen = []
    for user_id in client.accountants:
        member = members.get(user_id)
        if member is not None and member.active:
            chosen.append(member)
    return chosen
