"""Bulk assignment of one member to many clients (admins; idempotent)."""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime.

from fastapi import APIRouter

from contracts.api import MAX_BULK_IDS, BulkAssignment, BulkAssignmentResult
from services.client_directory.adapters.http.deps import AdminDep, ContextDep, Id, run, written
from services.client_directory.adapters.http.problems import ERRORS, unprocessable
from services.client_directory.application.bulk import NotAMember, OverlappingIds, change_assignments

router = APIRouter(prefix="/v1/accountants/{user_id}", tags=["accountants"], responses=ERRORS)


@router.post("/clients", response_model=BulkAssignmentResult,
             summary=f"Assign a member to clients and unassign them from others (admin; at most {MAX_BULK_IDS} ids)")
async def bulk_assign(user_id: Id, body: BulkAssignment, who: AdminDep, context: ContextDep) -> BulkAssignmentResult:
    if len(body.assign) + len(body.unassign) > MAX_BULK_IDS:
        raise unprocessable("body", f"at most {MAX_BULK_IDS} client ids in all")
    try:
        outcome = await run(lambda: change_assignments(
            context.directory, who.partner_id, user_id, body.assign, body.unassign))
    except NotAMember as error:
        raise unprocessable("path.user_id", str(error)) from None
    except OverlappingIds as error:
        raise unprocessable("body", str(error)) from None
    await written(context, outcome.notification_id)  # read-your-writes, as the single commands
    return BulkAssignmentResult(assigned=outcome.assigned, unassigned=outcome.unassigned,
                                not_found=outcome.not_found)
