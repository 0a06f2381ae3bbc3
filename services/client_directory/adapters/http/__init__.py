"""The HTTP API of DESIGN.md 2.2 (FastAPI). Handlers translate; the use cases live in the
application and the queries in the projection.

Errors are RFC 9457 problem details (`application/problem+json`): 401 without a valid token,
403 for what the caller's role may not do, 404 for any client the caller may not see
(whether it belongs to another firm or does not exist), 409 for a command the client's
state forbids, 422 for a request that names what is wrong with it.
"""

# No `from __future__ import annotations`: FastAPI resolves the dependencies named in the
# handlers' annotations (closures of build_api) at definition time.


import asyncio
import logging
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

import pydantic_core
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
from services.client_directory.adapters.auth import TokenVerifier
from services.client_directory.application.directory import (
    ClientDirectory,
    CommandRejected,
    IdempotencyKeyReused,
    NotAMember,
)
from services.client_directory.projections.clients import (
    BadCursor,
    Caller,
    ClientQueries,
    ClientsProjection,
    TabForbidden,
)

log = logging.getLogger("client_directory.http")

# No control characters: they are never part of an id or a search, and PostgreSQL refuses NUL.
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
Id = Annotated[str, Path(min_length=1, max_length=200, pattern=PRINTABLE)]
PROBLEM: dict[str, Any] = {"model": Problem, "content": {"application/problem+json": {}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    status: PROBLEM for status in (401, 403, 404, 409, 422)
}
TITLES = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large",
    415: "Unsupported Media Type", 422: "Unprocessable Content", 500: "Internal Server Error",
}


def problem(status: int, detail: str | None = None, errors: list[dict[str, Any]] | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    body = Problem(title=TITLES.get(status, "Error"), status=status, detail=detail,
                   errors=errors).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, media_type="application/problem+json",
                        headers=headers)


def page_json(page: dict[str, Any]) -> bytes:
    """The JSON of a Clients page, as FastAPI wrote it from the `ClientPage` model (same keys,
    order and bytes), without validating the read model's rows against the model on every
    request (validate and dump: about 175 us for 50 items; this: about 35 us). The query builds
    every field from typed columns; tests/client_directory/test_http_pages.py holds the two to
    the same bytes. `response_model=ClientPage` still documents it."""
    return pydantic_core.to_json(page)


def unprocessable(location: str, message: str) -> HTTPException:
    """A 422 naming the part of the request that is wrong, like a validation error."""
    return HTTPException(422, {"location": location, "message": message})


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
        description="The Clients page of the partner portal and its commands (DESIGN.md 2.2). "
        "Every endpoint under /v1 takes `Authorization: Bearer <JWT>` (HS256; claims sub, "
        "partner_id, role, exp). Errors are RFC 9457 problem details.",
    )

    @api.exception_handler(StarletteHTTPException)
    async def http_problem(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.detail, dict):  # from unprocessable(): one named error
            return problem(exc.status_code, f"{exc.detail['location']}: {exc.detail['message']}",
                           [exc.detail])
        return problem(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @api.exception_handler(RequestValidationError)
    async def validation_problem(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"location": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['location']}: {e['message']}" for e in errors[:5])
        return problem(422, detail, errors)

    @api.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return problem(500, "the request could not be completed; it is logged")

    verifier = TokenVerifier(jwt_secret)

    # Coroutines, not functions: FastAPI runs a plain function dependency in its thread pool,
    # a round trip through another thread for a dictionary lookup (a token seen before).
    async def caller(authorization: Annotated[str | None, Header()] = None) -> Caller:
        return verifier(authorization)

    async def admin(who: Annotated[Caller, Depends(caller)]) -> Caller:
        if not who.is_admin:
            raise HTTPException(403, "only admins of the firm may do this")
        return who

    async def visible(who: Caller, client_id: str) -> dict[str, Any]:
        """The client as the caller may see it; 404 alike for other firms' and unknown ids."""
        row = await asyncio.to_thread(queries.client, who, client_id)
        if row is None:
            raise HTTPException(404, f"no client {client_id} here")
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
            raise HTTPException(404, "no such client here") from None
        except CommandRejected as rejection:
            raise HTTPException(409, str(rejection)) from None

    @api.get("/v1/clients", response_model=ClientPage, responses=ERRORS, tags=["clients"],
             summary="A tab of the Clients page")
    async def list_clients(
        who: Annotated[Caller, Depends(caller)],
        tab: TabId = TabId.MINE,
        q: Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$",
                                       description="Case- and accent-insensitive substring of the name")] = None,
        missing_receipts: Annotated[bool, Query(description="Only clients with missing receipts")] = False,
        sort: Annotated[str, Query(pattern=r"^-?name$", description="`name` or `-name`")] = "name",
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=4000,
                                            description="next_cursor of the previous page")] = None,
    ) -> Response:
        def read() -> dict[str, Any]:
            return queries.page(who, tab, q=q, missing_receipts=missing_receipts,
                                descending=sort.startswith("-"), limit=limit, cursor=cursor)

        try:
            page = await asyncio.to_thread(read)
        except TabForbidden as error:
            raise HTTPException(403, str(error)) from None
        except BadCursor as error:
            raise unprocessable("query.cursor", str(error)) from None
        return Response(page_json(page), media_type="application/json")

    @api.get("/v1/clients/{client_id}", response_model=ClientDetails, responses=ERRORS,
             tags=["clients"], summary="View details, with the caller's email notifications")
    async def client_details(client_id: Id, who: Annotated[Caller, Depends(caller)]) -> ClientDetails:
        return ClientDetails.model_validate(await visible(who, client_id))

    @api.get("/v1/clients/{client_id}/go", response_model=GoToClient, responses=ERRORS,
             tags=["clients"], summary="Go to client: a link into the client's account")
    async def go_to_client(client_id: Id, who: Annotated[Caller, Depends(caller)]) -> GoToClient:
        row = await visible(who, client_id)
        if row["status"] != "connected":
            raise HTTPException(409, f"client {client_id} is not connected yet ({row['status']})")
        return GoToClient(url=f"{portal_base_url}/clients/{quote(client_id, safe='')}/account")

    @api.post("/v1/invitations/{client_id}/accept", response_model=ClientItem, responses=ERRORS,
              tags=["invitations"], summary="Accept a client's invitation (admin)")
    async def accept(client_id: Id, who: Annotated[Caller, Depends(admin)]) -> ClientItem:
        await visible(who, client_id)
        await written(await run(lambda: directory.accept_invitation(who.partner_id, client_id,
                                                                    who.user_id)))
        return ClientItem.model_validate(await visible(who, client_id))

    @api.post("/v1/invitations/{client_id}/decline", status_code=204, responses=ERRORS,
              tags=["invitations"], summary="Decline a client's invitation (admin)")
    async def decline(client_id: Id, who: Annotated[Caller, Depends(admin)]) -> Response:
        await visible(who, client_id)
        await written(await run(lambda: directory.decline_invitation(who.partner_id, client_id,
                                                                     who.user_id)))
        return Response(status_code=204)

    async def change_accountants(who: Caller, client_id: str,
                                 command: Callable[[], int | None]) -> ClientItem:
        await visible(who, client_id)
        try:
            notification_id = await run(command)
        except NotAMember as error:
            raise unprocessable("path.user_id", str(error)) from None
        await written(notification_id)
        return ClientItem.model_validate(await visible(who, client_id))

    @api.put("/v1/clients/{client_id}/accountants/{user_id}", response_model=ClientItem,
             responses=ERRORS, tags=["accountants"],
             summary="Assign a member of the firm to the client (admin; idempotent)")
    async def assign(client_id: Id, user_id: Id, who: Annotated[Caller, Depends(admin)]) -> ClientItem:
        return await change_accountants(
            who, client_id, lambda: directory.assign(who.partner_id, client_id, user_id))

    @api.delete("/v1/clients/{client_id}/accountants/{user_id}", response_model=ClientItem,
                responses=ERRORS, tags=["accountants"],
                summary="Unassign a member from the client (admin; idempotent)")
    async def unassign(client_id: Id, user_id: Id, who: Annotated[Caller, Depends(admin)]) -> ClientItem:
        return await change_accountants(
            who, client_id, lambda: directory.unassign(who.partner_id, client_id, user_id))

    @api.put("/v1/clients/{client_id}/notifications", response_model=NotificationSetting,
             responses=ERRORS, tags=["notifications"],
             summary="The caller's email notifications for the client")
    async def set_notifications(client_id: Id, setting: NotificationSetting,
                                who: Annotated[Caller, Depends(caller)]) -> NotificationSetting:
        await visible(who, client_id)
        await written(await run(lambda: directory.set_preference(
            who.partner_id, client_id, who.user_id, setting.email_enabled, setting.frequency.value)))
        return setting

    @api.post("/v1/clients/{client_id}/reminders", status_code=202, response_model=ReminderAccepted,
              responses=ERRORS, tags=["notifications"],
              summary="Notify the client's accountants (admin); Idempotency-Key honoured")
    async def remind(
        client_id: Id,
        body: ReminderRequest,
        who: Annotated[Caller, Depends(admin)],
        idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200,
                                                      pattern=PRINTABLE)] = None,
    ) -> ReminderAccepted:
        await visible(who, client_id)
        tasks = list(dict.fromkeys(t.value for t in body.tasks))  # each task named once
        try:
            reminder_id, notification_id = await run(lambda: directory.request_reminder(
                who.partner_id, client_id, who.user_id, tasks, body.comment, idempotency_key))
        except IdempotencyKeyReused as error:
            raise unprocessable("header.idempotency-key", str(error)) from None
        await written(notification_id)
        return ReminderAccepted(reminder_id=reminder_id)

    return api
