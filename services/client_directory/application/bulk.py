"""Bulk assignment: assign one member to many clients and unassign them from others, in one
transaction, with one event (and one published message) per client that changes.

It is the single assign/unassign commands of ClientDirectory, many at once: the same rules,
the same events, the same idempotence (a client already in the asked state changes nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from contracts.events import Topic
from events.inbox import UnitOfWork
from services.client_directory.application.directory import ClientDirectory, NotAMember, _as_command
from services.client_directory.domain.model import ENDED, ClientRelationship, client_key


class OverlappingIds(ValueError):
    """A client named both to assign and to unassign (HTTP 422)."""


@dataclass
class BulkOutcome:
    assigned: list[str] = field(default_factory=list)
    unassigned: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    notification_id: int | None = None  # the last event written, for read-your-writes


def change_assignments(directory: ClientDirectory, partner_id: str, user_id: str,
                       assign: Sequence[str], unassign: Sequence[str]) -> BulkOutcome:
    """Assign `user_id` to the `assign` clients and unassign them from the `unassign` ones.

    Assigning needs an active member (NotAMember otherwise, before anything changes); a kept
    assignment of a member not known yet may still be undone, as with the single DELETE.
    Unknown and ended clients are reported as not found."""
    assign, unassign = list(dict.fromkeys(assign)), list(dict.fromkeys(unassign))
    if both := set(assign) & set(unassign):
        raise OverlappingIds(f"named both to assign and to unassign: {', '.join(sorted(both)[:5])}")
    outcome = BulkOutcome()

    def command(uow: UnitOfWork) -> Sequence[Any]:
        outcome.assigned, outcome.unassigned, outcome.not_found = [], [], []  # a retry starts over
        if assign:
            directory._active_member(uow, partner_id, user_id)
        uow.prefetch(client_key(partner_id, c) for c in [*assign, *unassign])
        published: list[Any] = []
        for client_id, assigning in [*((c, True) for c in assign), *((c, False) for c in unassign)]:
            client: ClientRelationship | None = uow.get(client_key(partner_id, client_id))
            if client is None or client.status in ENDED:
                outcome.not_found.append(client_id)
                continue
            (outcome.assigned if assigning else outcome.unassigned).append(client_id)
            if (user_id in client.accountants) == assigning:
                continue  # already so: no event
            if assigning:
                directory._changing(uow, client, lambda c: _as_command(lambda: c.assign(user_id)))
            else:
                directory._changing(uow, client, lambda c: c.unassign(user_id))
            type_ = "client.accountant_assigned.v1" if assigning else "client.accountant_unassigned.v1"
            published += directory._outbound(Topic.CLIENT_DIRECTORY, type_, partner_id, client_id,
                                             {"client_id": client_id, "user_id": user_id})
        return published

    outcome.notification_id = directory._execute(command)
    return outcome


__all__ = ["BulkOutcome", "NotAMember", "OverlappingIds", "change_assignments"]
