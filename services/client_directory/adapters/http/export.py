"""GET /v1/clients.csv: the whole filtered tab as CSV, streamed a page at a time."""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime.

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse

from contracts.api import ClientSort, TabId
from services.client_directory.adapters.http.clients import MissingReceiptsQuery, SearchQuery, SortQuery
from services.client_directory.adapters.http.deps import CallerDep, QueriesDep
from services.client_directory.adapters.http.problems import ERRORS
from services.client_directory.application.export import header, page_of
from services.client_directory.projections.clients import TabForbidden
from services.client_directory.projections.page import sort_order

router = APIRouter(tags=["clients"], responses=ERRORS)


@router.get("/v1/clients.csv", response_class=StreamingResponse, summary="A tab of the Clients page as CSV",
            responses={200: {"content": {"text/csv": {}}, "description": "header row, then one row per client"}})
async def export_clients(
    who: CallerDep,
    queries: QueriesDep,
    tab: TabId = TabId.MINE,
    q: SearchQuery = None,
    missing_receipts: MissingReceiptsQuery = False,
    sort: SortQuery = ClientSort.NAME,
) -> StreamingResponse:
    by, descending = sort_order(sort)

    def read(cursor: str | None) -> tuple[bytes, str | None]:
        return page_of(queries, who, tab, q=q, missing_receipts=missing_receipts, descending=descending,
                       cursor=cursor, by=by)

    try:  # the first page before the status line: a refusal is still a problem response
        first = await asyncio.to_thread(read, None)
    except TabForbidden as error:
        raise HTTPException(403, str(error)) from None

    async def rows() -> AsyncIterator[bytes]:
        body, cursor = first
        yield header() + body
        while cursor is not None:
            body, cursor = await asyncio.to_thread(read, cursor)
            yield body

    filename = f"clients-{tab.value}.csv"
    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})
