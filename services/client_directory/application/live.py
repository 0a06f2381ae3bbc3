"""The live page (GET /v1/stream): tell each open page when one of its tabs changed.

One poller per process follows the Clients projection's position (one primary-key read per
tick, whoever listens). When it moves, the poller reads what the store recorded in between,
finds the firms and clients it touched, and, once per member listening in those firms, reads
their tab counts and which changed clients they can see; every stream of that member gets the
result. Nothing is read per connection per tick. An event's id is the projection's position,
so a stream that drops resumes with `Last-Event-ID`: its first event sums up what it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from contracts.api import TabId
from events.store import EventStoreApplication
from services.client_directory.projections.clients import Caller, ClientQueries, ClientsProjection
from services.client_directory.projections.fold import TOPICS

log = logging.getLogger("client_directory.live")
MAX_PER_MEMBER = 5
MAX_CLIENTS = 50  # listed per event; beyond, `truncated` says to reload the tab
MAX_SCAN = 5000  # notifications read per change; beyond, every listener reloads
CLIENT_AGGREGATES = ("client_directory:ClientRelationship", "client_directory:ClientFigures")


class TooManyStreams(Exception):
    """The member has MAX_PER_MEMBER streams open on this instance already (HTTP 429)."""


@dataclass(eq=False)
class Subscription:
    caller: Caller
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(maxsize=16))
    last_tabs: list[dict[str, Any]] | None = None


@dataclass
class Changes:
    """What moved between two positions: clients by firm, and firms touched otherwise."""

    clients: dict[str, set[str]] = field(default_factory=dict)
    truncated: bool = False  # too much to say: every listener reloads

    def touch(self, partner_id: str, client_id: str | None) -> None:
        touched = self.clients.setdefault(partner_id, set())
        if client_id is not None:
            touched.add(client_id)


class LiveTabs:
    def __init__(self, app: EventStoreApplication, projection: ClientsProjection, queries: ClientQueries,
                 *, per_member: int = MAX_PER_MEMBER, interval: float = 0.1) -> None:
        self.app, self.projection, self.queries = app, projection, queries
        self.per_member, self.interval = per_member, interval
        self.subscribers: dict[tuple[str, str], list[Subscription]] = {}
        self._owners: dict[uuid.UUID, tuple[str, str | None]] = {}  # aggregate -> (firm, client)
        self._task: asyncio.Task[None] | None = None
        # Where the poller is; set by the first stream's first event, so that nothing between
        # what that stream was told and where the poller starts is missed.
        self.position: int | None = None

    # --- connections ----------------------------------------------------------------------------

    def subscribe(self, caller: Caller) -> Subscription:
        streams = self.subscribers.setdefault((caller.partner_id, caller.user_id), [])
        if len(streams) >= self.per_member:
            raise TooManyStreams(f"at most {self.per_member} live streams per member")
        subscription = Subscription(caller)
        streams.append(subscription)
        if self._task is None or self._task.done():  # the poller runs while anyone listens
            self._task = asyncio.get_running_loop().create_task(self._poll())
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        key = (subscription.caller.partner_id, subscription.caller.user_id)
        streams = self.subscribers.get(key, [])
        if subscription in streams:
            streams.remove(subscription)
        if not streams:
            self.subscribers.pop(key, None)

    def first_event(self, subscription: Subscription, last_event_id: int | None) -> dict[str, Any] | None:
        """What a new stream says first: the current tabs, and with `last_event_id` the clients
        changed since (None when it missed nothing). Blocking: run it off the event loop."""
        position = self.projection.position()
        if self.position is None:
            self.position = position
        if last_event_id is not None and last_event_id >= position:
            subscription.last_tabs = self._tabs(subscription.caller)
            return None
        changes = self.changes(last_event_id, position) if last_event_id is not None else Changes()
        return self._event(subscription, position, changes, force=True)

    # --- the poller -----------------------------------------------------------------------------

    async def _poll(self) -> None:
        try:
            while self.subscribers:
                await asyncio.sleep(self.interval)
                start = self.position
                if start is None:
                    continue  # the first stream has not been told anything yet
                try:
                    position = await asyncio.to_thread(self.projection.position)
                    if position > start:
                        await asyncio.to_thread(self._fan_out, start, position)
                        self.position = position
                except Exception:
                    log.exception("live tabs: reading the changes failed; trying again")
        finally:
            self.position = None  # the next poller starts from its first stream's position

    def _fan_out(self, start: int, end: int) -> None:
        changes = self.changes(start, end)
        for (partner_id, _), streams in list(self.subscribers.items()):
            if not streams or (not changes.truncated and partner_id not in changes.clients):
                continue
            first = streams[0]
            event_ = self._event(first, end, changes)
            for subscription in list(streams):
                if event_ is not None:
                    subscription.last_tabs = first.last_tabs
                    with contextlib.suppress(asyncio.QueueFull):  # a stalled reader gets the next one
                        subscription.queue.put_nowait(event_)

    def changes(self, start: int | None, end: int) -> Changes:
        """The firms and clients the events after `start` up to `end` touched."""
        found = Changes()
        batch = self.app.recorder.select_notifications(start=start or 0, limit=MAX_SCAN, stop=end,
                                                       topics=sorted(TOPICS), inclusive_of_start=False)
        if len(batch) >= MAX_SCAN:
            found.truncated = True
            return found
        for notification in batch:
            owner = self._owner(notification.originator_id)
            if owner is not None:
                found.touch(*owner)
        return found

    def _owner(self, aggregate_id: Any) -> tuple[str, str | None] | None:
        """(firm, client or None) of an aggregate, from its first event, remembered."""
        if aggregate_id in self._owners:
            return self._owners[aggregate_id]
        first = self.app.recorder.select_events(aggregate_id, lte=1, limit=1)
        if not first:
            return None
        created: Any = self.app.mapper.to_domain_event(first[0])
        partner_id = getattr(created, "partner_id", None)
        if not isinstance(partner_id, str):
            return None
        client = created.client_id if first[0].topic.startswith(CLIENT_AGGREGATES) else None
        if len(self._owners) > 100_000:
            self._owners.clear()
        self._owners[aggregate_id] = (partner_id, client)
        return self._owners[aggregate_id]

    # --- one member's event ---------------------------------------------------------------------

    def _event(self, subscription: Subscription, position: int, changes: Changes, *,
               force: bool = False) -> dict[str, Any] | None:
        caller = self._current(subscription.caller)
        if caller is None:
            return None  # no longer a member: the stream says nothing more
        tabs = self._tabs(caller)
        touched = sorted(changes.clients.get(caller.partner_id, ()))
        visible = touched if caller.is_admin else [c for c in touched[:MAX_CLIENTS]
                                                   if self.queries.client(caller, c) is not None]
        changed = tabs != subscription.last_tabs
        subscription.last_tabs = tabs
        if not (force or changed or visible or changes.truncated):
            return None
        return {"position": position, "tabs": tabs, "clients": visible[:MAX_CLIENTS],
                "truncated": changes.truncated or len(visible) > MAX_CLIENTS}

    def _current(self, said: Caller) -> Caller | None:
        member = self.queries.member(said.partner_id, said.user_id)
        if member is None or not member["active"]:
            return None
        return Caller(partner_id=said.partner_id, user_id=said.user_id, role=str(member["role"]))

    def _tabs(self, caller: Caller) -> list[dict[str, Any]]:
        tabs: Sequence[dict[str, Any]] = self.queries.page(caller, TabId.MINE, limit=1)["tabs"]
        return list(tabs)
