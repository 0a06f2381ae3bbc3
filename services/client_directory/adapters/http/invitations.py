"""Accept or decline a client's invitation (admins)."""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime.

from fastapi import APIRouter, Response

from contracts.api import ClientItem
from services.client_directory.adapters.http.deps import AdminDep, ContextDep, Id, run, visible, written
from services.client_directory.adapters.http.problems import ERRORS

router = APIRouter(prefix="/v1/invitations/{client_id}", tags=["invitations"], responses=ERRORS)


@router.post("/accept", response_model=ClientItem, summary="Accept a client's invitation (admin)")
async def accept(client_id: Id, who: AdminDep, context: ContextDep) -> ClientItem:
    await visible(context.queries, who, client_id)
    await written(context, await run(
        lambda: context.directory.accept_invitation(who.partner_id, client_id, who.user_id)))
    return ClientItem.model_validate(await visible(context.queries, who, client_id))


@router.post("/decline", status_code=204, summary="Decline a client's invitation (admin)")
async def decline(client_id: Id, who: AdminDep, context: ContextDep) -> Response:
    await visible(context.queries, who, client_id)
    await written(context, await run(
        lambda: context.directory.decline_invitation(who.partner_id, client_id, who.user_id)))
    return Response(status_code=204)
