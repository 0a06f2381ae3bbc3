"""A client's reminder history with each recipient's delivery outcome (who can see the client)."""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime.

import asyncio
from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Query

from contracts.api import ReminderHistory
from services.client_directory.adapters.http.deps import CallerDep, ContextDep, Id, visible
from services.client_directory.adapters.http.problems import ERRORS

router = APIRouter(prefix="/v1/clients/{client_id}", tags=["notifications"], responses=ERRORS)


@router.get("/reminders", response_model=ReminderHistory,
            summary="The client's reminders, newest first, with each recipient's outcome")
async def reminder_history(client_id: Id, who: CallerDep, context: ContextDep,
                           limit: Annotated[int, Query(ge=1, le=200)] = 50) -> ReminderHistory:
    await visible(context.queries, who, client_id)
    history = context.reminders
    assert history is not None, "bootstrap builds the reminder history"

    def read() -> list[dict[str, Any]]:
        history.catch_up()  # a reminder just requested through this instance is listed

        @cache  # one read per person named, however many reminders name them
        def name(partner_id: str, user_id: str) -> str | None:
            member = context.queries.member(partner_id, user_id)
            return str(member["name"]) if member else None

        return history.history(who.partner_id, client_id, name, limit)

    return ReminderHistory.model_validate({"items": await asyncio.to_thread(read)})
