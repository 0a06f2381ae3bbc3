"""What the API's handlers depend on, as `Annotated` aliases (FastAPI dependencies), so a test
can replace any of them with `app.dependency_overrides`:

- `TokenDep`: who the bearer token says the caller is (401 if it says nothing valid);
- `CallerDep`: that caller as the read model knows them now: their current role decides, and a
  member removed (or never added) is refused with 403 at once, whatever the token says;
- `AdminDep`: a caller whose current role is admin (403 otherwise);
- `DirectoryDep`, `QueriesDep`, `ContextDep`: the application, its queries, and the rest.

Dependencies are coroutines: FastAPI runs a plain function dependency in its thread pool, a
round trip through another thread for what is often a dictionary lookup.
"""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime.

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Path, Request

from services.client_directory.adapters.auth import TokenVerifier
from services.client_directory.application.directory import ClientDirectory, CommandRejected
from services.client_directory.application.live import LiveTabs
from services.client_directory.projections.clients import Caller, ClientQueries, ClientsProjection
from services.client_directory.projections.reminders import ReminderHistory

# Ids name one path segment: no "/" (Starlette decodes %2F before routing, so such an id could
# never be addressed), and no control characters (never part of an id; PostgreSQL refuses NUL).
# The consumer rejects events carrying other ids (`_refuse_unaddressable` in application/directory.py).
ID_PATTERN = r"^[^\x00-\x1f\x7f/]+$"
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
Id = Annotated[str, Path(min_length=1, max_length=200, pattern=ID_PATTERN)]


@dataclass(frozen=True)
class HttpContext:
    """The objects the API's handlers use, built by the composition root (bootstrap.py)."""

    directory: ClientDirectory
    projection: ClientsProjection
    queries: ClientQueries
    verifier: TokenVerifier
    portal_base_url: str
    wake_relay: Callable[[], None]
    # v1.1: the reminder history read model and the live page's fan-out (bootstrap builds both).
    reminders: ReminderHistory | None = None
    live: LiveTabs | None = None


async def get_context(request: Request) -> HttpContext:
    context: HttpContext = request.app.state.client_directory
    return context


ContextDep = Annotated[HttpContext, Depends(get_context)]


async def get_directory(context: ContextDep) -> ClientDirectory:
    return context.directory


async def get_queries(context: ContextDep) -> ClientQueries:
    return context.queries


DirectoryDep = Annotated[ClientDirectory, Depends(get_directory)]
QueriesDep = Annotated[ClientQueries, Depends(get_queries)]


async def token_caller(context: ContextDep, authorization: Annotated[str | None, Header()] = None) -> Caller:
    return context.verifier(authorization)


TokenDep = Annotated[Caller, Depends(token_caller)]


def current(queries: ClientQueries, said: Caller) -> Caller:
    """The caller with their current role from the read model (one primary-key read): a token
    outlives a removal or a demotion, the facts do not."""
    member = queries.member(said.partner_id, said.user_id)
    if member is None:
        raise HTTPException(403, "you are not a member of this firm")
    if not member["active"]:
        raise HTTPException(403, "you are no longer a member of this firm")
    if member["role"] == said.role:
        return said
    return Caller(partner_id=said.partner_id, user_id=said.user_id, role=str(member["role"]))


async def current_caller(said: TokenDep, queries: QueriesDep) -> Caller:
    return await asyncio.to_thread(current, queries, said)


CallerDep = Annotated[Caller, Depends(current_caller)]


async def current_admin(who: CallerDep) -> Caller:
    if not who.is_admin:
        raise HTTPException(403, "only admins of the firm may do this")
    return who


AdminDep = Annotated[Caller, Depends(current_admin)]


# --- what several handlers do -------------------------------------------------------------------


async def visible(queries: ClientQueries, who: Caller, client_id: str) -> dict[str, Any]:
    """The client as the caller may see it; 404 alike for other firms' and unknown ids."""
    row = await asyncio.to_thread(queries.client, who, client_id)
    if row is None:
        raise HTTPException(404, f"no client {client_id} here")
    return row


async def written(context: HttpContext, notification_id: int | None) -> None:
    """Read-your-writes: the projection has applied the write before the response."""
    if notification_id is not None:
        await asyncio.to_thread(context.projection.catch_up, notification_id)
        context.wake_relay()


async def run(command: Callable[[], Any]) -> Any:
    """A command of the application, off the event loop; its refusals as HTTP errors."""
    try:
        return await asyncio.to_thread(command)
    except LookupError:
        raise HTTPException(404, "no such client here") from None
    except CommandRejected as rejection:
        raise HTTPException(409, str(rejection)) from None
