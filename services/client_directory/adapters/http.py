"""The HTTP API of DESIGN.md 2.2 (FastAPI). Handlers translate; the use cases live in the
application and the queries in the projection."""



import asyncio
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from contracts.api import (
    ClientDetails,
    ClientItem,
    ClientPage,
    GoToClient,
    NotificationSetting,
    Problem,
    ReminderAccepted,
    ReminderRequest,
    TabId,
)
from services.client_directory.adapters.auth import caller_from
from services.client_directory.application.directory import ClientDirectory, CommandRejected
from services.client_directory.projections.clients import (
    HIDDEN_WHEN_EMPTY,
    BadCursor,
    Caller,
    ClientQueries,
    ClientsProjection,
    tabs_for,
)

ClientId = Annotated[str, Path(min_length=1, max_length=200)]
PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}
ERRORS: dict[int | str, dict[str, Any]] = {401: PROBLEM, 403: PROBLEM, 404: PROBLEM, 409: PROBLEM, 422: PROBLEM}


def problem(status: int, title: str, detail: str | None = None, errors: list[dict[str, Any]] | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    body = Problem(title=title, status=status, detail=detail, errors=errors).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
          409: "Conflict", 413: "Payload Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content"}


def item_of(row: dict[str, Any]) -> ClientItem:
    wallet = None
    if row.get("wallet_amount") is not None:
        wallet = {"amount": row["wallet_amount"], "currency": row["wallet_currency"]}
    return ClientItem.model_validate({**row, "wallet_balance": wallet})


def build_api(
    directory: ClientDirectory,
    projection: ClientsProjection,
    queries: ClientQueries,
    *,
    jwt_secret: str,
    portal_base_url: str,
    wake_relay: Callable[[], None] = lambda: None,
) -> FastAPI:
    api = FastAPI(
        title="Partner portal: client directory",
        version="1.0.0",
        description="The Clients page of the partner portal and its commands (DESIGN.md 2.2).",
    )

    @api.exception_handler(StarletteHTTPException)
    async def http_problem(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, TITLES.get(exc.status_code, "Error"), str(exc.detail),
                       headers=getattr(exc, "headers", None))

    @api.exception_handler(RequestValidationError)
    async def validation_problem(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"location": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['location']}: {e['message']}" for e in errors[:5])
        return problem(422, "Unprocessable Content", detail, errors)

    def caller(authorization: Annotated[str | None, Header()] = None) -> Caller:
        return caller_from(authorization, jwt_secret)

    def admin(who: Annotated[Caller, Depends(caller)]) -> Caller:
        if not who.is_admin:
            raise HTTPException(403, "only admins may do this")
        return who

    async def visible(who: Caller, client_id: str) -> dict[str, Any]:
        row = await asyncio.to_thread(queries.client, who, client_id)
        if row is None:
            raise HTTPException(404, f"no client {client_id}")
        return row

    async def written(notification_id: int | None) -> None:
        """Read-your-writes: the projection has applied the write before the response."""
        if notification_id is not None:
            await asyncio.to_thread(projection.catch_up, notification_id)
            wake_relay()

    async def run(command: Callable[[], Any]) -> Any:
        try:
            return await asyncio.to_thread(command)
        except LookupError:
            raise HTTPException(404, "no such client") from None
        except CommandRejected as rejection:
            raise HTTPException(409, str(rejection)) from None

    @api.get("/v1/clients", response_model=ClientPage, responses=ERRORS, tags=["clients"])
    async def list_clients(
        who: Annotated[Caller, Depends(caller)],
        tab: TabId = TabId.MINE,
        q: Annotated[str | None, Query(max_length=200)] = None,
        missing_receipts: bool = False,
        sort: Annotated[str, Query(pattern=r"^-?name$")] = "name",
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=2000)] = None,
    ) -> ClientPage:
        if tab not in tabs_for(who):
            raise HTTPException(403, f"the {tab.value} tab is not for the {who.role} role")

        def read() -> tuple[dict[TabId, int], list[dict[str, Any]], str | None]:
            counts = queries.counts(who)
            rows, next_cursor = queries.page(
                who, tab, q=q, missing_receipts=missing_receipts, descending=sort.startswith("-"),
                limit=limit, cursor=cursor,
            )
            return counts, rows, next_cursor

        try:
            counts, rows, next_cursor = await asyncio.to_thread(read)
        except BadCursor as error:
            raise HTTPException(400, str(error)) from None
        tabs = [
            {"id": t, "count": counts[t]}
            for t in tabs_for(who)
            if counts[t] > 0 or t not in HIDDEN_WHEN_EMPTY
        ]
        return ClientPage.model_validate(
            {"tab": tab, "tabs": tabs, "items": [item_of(r) for r in rows], "next_cursor": next_cursor}
        )

    @api.get("/v1/clients/{client_id}", response_model=ClientDetails, responses=ERRORS, tags=["clients"])
    async def client_details(client_id: ClientId, who: Annotated[Caller, Depends(caller)]) -> ClientDetails:
        row = await visible(who, client_id)
        return ClientDetails.model_validate({**item_of(row).model_dump(), "notifications": row["notifications"]})

    @api.get("/v1/clients/{client_id}/go", response_model=GoToClient, responses=ERRORS, tags=["clients"])
    async def go_to_client(client_id: ClientId, who: Annotated[Caller, Depends(caller)]) -> GoToClient:
        row = await visible(who, client_id)
        if row["status"] != "connected":
            raise HTTPException(409, f"client {client_id} is not connected yet ({row['status']})")
        return GoToClient(url=f"{portal_base_url}/clients/{quote(client_id, safe='')}/account")

    @api.post("/v1/invitations/{client_id}/accept", response_model=ClientItem, responses=ERRORS,
              tags=["invitations"])
    async def accept(client_id: ClientId, who: Annotated[Caller, Depends(admin)]) -> ClientItem:
        await visible(who, client_id)
        await written(await run(lambda: directory.accept_invitation(who.partner_id, client_id, who.user_id)))
        return item_of(await visible(who, client_id))

    @api.post("/v1/invitations/{client_id}/decline", status_code=204, responses=ERRORS, tags=["invitations"])
    async def decline(client_id: ClientId, who: Annotated[Caller, Depends(admin)]) -> Response:
        await visible(who, client_id)
        await written(await run(lambda: directory.decline_invitation(who.partner_id, client_id, who.user_id)))
        return Response(status_code=204)

    @api.put("/v1/clients/{client_id}/accountants/{user_id}", response_model=ClientItem, responses=ERRORS,
             tags=["accountants"])
    async def assign(client_id: ClientId, user_id: ClientId, who: Annotated[Caller, Depends(admin)]) -> ClientItem:
        await visible(who, client_id)
        member = await asyncio.to_thread(queries.member, who.partner_id, user_id)
        if member is None or not member["active"]:
            raise HTTPException(422, f"{user_id} is not a member of this firm")
        await written(await run(lambda: directory.assign(who.partner_id, client_id, user_id)))
        return item_of(await visible(who, client_id))

    @api.delete("/v1/clients/{client_id}/accountants/{user_id}", response_model=ClientItem, responses=ERRORS,
                tags=["accountants"])
    async def unassign(client_id: ClientId, user_id: ClientId, who: Annotated[Caller, Depends(admin)]) -> ClientItem:
        await visible(who, client_id)
        await written(await run(lambda: directory.unassign(who.partner_id, client_id, user_id)))
        return item_of(await visible(who, client_id))

    @api.put("/v1/clients/{client_id}/notifications", response_model=NotificationSetting, responses=ERRORS,
             tags=["notifications"])
    async def set_notifications(client_id: ClientId, setting: NotificationSetting,
                                who: Annotated[Caller, Depends(caller)]) -> NotificationSetting:
        await visible(who, client_id)
        await written(await run(lambda: directory.set_preference(
            who.partner_id, client_id, who.user_id, setting.email_enabled, setting.frequency.value)))
        return setting

    @api.post("/v1/clients/{client_id}/reminders", status_code=202, response_model=ReminderAccepted,
              responses=ERRORS, tags=["notifications"])
    async def remind(
        client_id: ClientId,
        body: ReminderRequest,
        who: Annotated[Caller, Depends(admin)],
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> ReminderAccepted:
        await visible(who, client_id)
        reminder_id, notification_id = await run(lambda: directory.request_reminder(
            who.partner_id, client_id, who.user_id, [t.value for t in body.tasks], body.comment, idempotency_key))
        await written(notification_id)
        return ReminderAccepted(reminder_id=reminder_id)

    return api
