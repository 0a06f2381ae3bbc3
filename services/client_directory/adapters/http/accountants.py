"""Assign and unassign a client's accountants (admins; both idempotent). An accountant may
unassign themselves ("Unassign the client from you"); anyone else's assignment is the admins'."""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime.

from collections.abc import Callable

from fastapi import APIRouter, HTTPException

from contracts.api import ClientItem
from services.client_directory.adapters.http.deps import (
    AdminDep,
    CallerDep,
    ContextDep,
    HttpContext,
    Id,
    run,
    visible,
    written,
)
from services.client_directory.adapters.http.problems import ERRORS, unprocessable
from services.client_directory.application.directory import NotAMember
from services.client_directory.projections.clients import Caller

router = APIRouter(prefix="/v1/clients/{client_id}/accountants", tags=["accountants"], responses=ERRORS)


async def change_accountants(context: HttpContext, who: Caller, client_id: str,
                             command: Callable[[], int | None], *, read_as: Caller | None = None) -> ClientItem:
    await visible(context.queries, who, client_id)
    try:
        notification_id = await run(command)
    except NotAMember as error:
        raise unprocessable("path.user_id", str(error)) from None
    await written(context, notification_id)
    return ClientItem.model_validate(await visible(context.queries, read_as or who, client_id))


@router.put("/{user_id}", response_model=ClientItem,
            summary="Assign a member of the firm to the client (admin; idempotent)")
async def assign(client_id: Id, user_id: Id, who: AdminDep, context: ContextDep) -> ClientItem:
    return await change_accountants(
        context, who, client_id, lambda: context.directory.assign(who.partner_id, client_id, user_id))


@router.delete("/{user_id}", response_model=ClientItem,
               summary="Unassign a member from the client (admin; an accountant only themselves; idempotent)")
async def unassign(client_id: Id, user_id: Id, who: CallerDep, context: ContextDep) -> ClientItem:
    if not who.is_admin and user_id != who.user_id:
        raise HTTPException(403, "an accountant may unassign only themselves")
    # Once unassigned, an accountant may no longer see the client on their tabs: the answer is
    # the client as the firm now has it, which they saw a moment ago.
    firm_view = None if who.is_admin else Caller(who.partner_id, who.user_id, "admin")
    return await change_accountants(
        context, who, client_id, lambda: context.directory.unassign(who.partner_id, client_id, user_id),
        read_as=firm_view)
