"""GET /v1/clients (a tab of the Clients page), one client's details, and Go to client."""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime.

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

import pydantic_core
from fastapi import APIRouter, HTTPException, Query, Response

from contracts.api import ClientDetails, ClientPage, ClientSort, GoToClient, TabId
from contracts.schedule import next_digest_at
from services.client_directory.adapters.http.deps import CallerDep, ContextDep, Id, QueriesDep, visible
from services.client_directory.adapters.http.problems import ERRORS, unprocessable
from services.client_directory.application.directory import ClientDirectory
from services.client_directory.domain.model import NotificationPreference, preference_key
from services.client_directory.projections.clients import Caller, TabForbidden
from services.client_directory.projections.page import sort_order

SORT_DESCRIPTION = ("`name` (the default), or `missing_receipts` or `ready_to_export` (then name, then "
                    "client_id); a leading `-` reverses the whole order")

# The filters a tab is read with, the same on the page and its CSV export.
SearchQuery = Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$",
                                          description="Case- and accent-insensitive substring of the name")]
MissingReceiptsQuery = Annotated[bool, Query(description="Only clients with missing receipts")]
SortQuery = Annotated[ClientSort, Query(description=SORT_DESCRIPTION)]

router = APIRouter(tags=["clients"], responses=ERRORS)


def page_json(page: dict[str, Any]) -> bytes:
    """The JSON of a Clients page, as FastAPI wrote it from the `ClientPage` model (same keys,
    order and bytes), without validating the read model's rows against the model on every
    request: the query builds every field from typed columns, and
    tests/client_directory/test_http_pages.py holds the two to the same bytes.
    `response_model=ClientPage` still documents it."""
    return pydantic_core.to_json(page)


@router.get("/v1/clients", response_model=ClientPage, summary="A tab of the Clients page")
async def list_clients(
    who: CallerDep,
    queries: QueriesDep,
    tab: TabId = TabId.MINE,
    q: SearchQuery = None,
    missing_receipts: MissingReceiptsQuery = False,
    sort: SortQuery = ClientSort.NAME,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=4000, description="next_cursor of the previous page")] = None,
) -> Response:
    by, descending = sort_order(sort)

    def read() -> dict[str, Any]:
        return queries.page(who, tab, q=q, missing_receipts=missing_receipts, by=by,
                            descending=descending, limit=limit, cursor=cursor)

    try:
        page = await asyncio.to_thread(read)
    except TabForbidden as error:
        raise HTTPException(403, str(error)) from None
    except (ValueError, RecursionError) as error:
        # The cursor is the only parameter the query decodes itself: whatever it holds, a
        # cursor this API did not write is the caller's mistake, never a 500.
        reason = str(error) if isinstance(error, ValueError) else "cursor is not one this API returned"
        raise unprocessable("query.cursor", reason) from None
    return Response(page_json(page), media_type="application/json")


@router.get("/v1/clients/{client_id}", response_model=ClientDetails,
            summary="View details, with the caller's email notifications")
async def client_details(client_id: Id, who: CallerDep, context: ContextDep) -> ClientDetails:
    details = await visible(context.queries, who, client_id)
    settings = details["notifications"]
    settings["next_digest_at"] = None
    if settings["email_enabled"]:
        set_at = await asyncio.to_thread(_preference_set_at, context.directory, who, client_id)
        if set_at is not None:
            settings["next_digest_at"] = next_digest_at(settings["frequency"], set_at, datetime.now(UTC))
    return ClientDetails.model_validate(details)


def _preference_set_at(directory: ClientDirectory, who: Caller, client_id: str) -> datetime | None:
    """When the caller's setting was last set: the notifier counts its first Monday from then.
    The read model keeps no time, so it is the event store's (one small aggregate)."""
    key = preference_key(who.partner_id, client_id, who.user_id)
    if key not in directory.repository:
        return None
    preference: NotificationPreference = directory.repository.get(key)
    return preference.modified_on


@router.get("/v1/clients/{client_id}/go", response_model=GoToClient,
            summary="Go to client: a link into the client's account")
async def go_to_client(client_id: Id, who: CallerDep, context: ContextDep) -> GoToClient:
    row = await visible(context.queries, who, client_id)
    if row["status"] != "connected":
        raise HTTPException(409, f"client {client_id} is not connected yet ({row['status']})")
    return GoToClient(url=f"{context.portal_base_url}/clients/{quote(client_id, safe='')}/account")
