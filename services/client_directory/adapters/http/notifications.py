"""The caller's email notifications for a client, and reminders to its accountants."""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime.

from typing import Annotated

from fastapi import APIRouter, Header

from contracts.api import NotificationSetting, ReminderAccepted, ReminderRequest
from services.client_directory.adapters.http.deps import (
    PRINTABLE,
    AdminDep,
    CallerDep,
    ContextDep,
    Id,
    run,
    visible,
    written,
)
from services.client_directory.adapters.http.problems import ERRORS, unprocessable
from services.client_directory.application.directory import IdempotencyKeyReused

router = APIRouter(prefix="/v1/clients/{client_id}", tags=["notifications"], responses=ERRORS)


@router.put("/notifications", response_model=NotificationSetting,
            summary="The caller's email notifications for the client")
async def set_notifications(client_id: Id, setting: NotificationSetting, who: CallerDep,
                            context: ContextDep) -> NotificationSetting:
    await visible(context.queries, who, client_id)
    await written(context, await run(lambda: context.directory.set_preference(
        who.partner_id, client_id, who.user_id, setting.email_enabled, setting.frequency.value)))
    return setting


@router.post("/reminders", status_code=202, response_model=ReminderAccepted,
             summary="Notify the client's accountants (admin); Idempotency-Key honoured")
async def remind(
    client_id: Id,
    body: ReminderRequest,
    who: AdminDep,
    context: ContextDep,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200, pattern=PRINTABLE)] = None,
) -> ReminderAccepted:
    await visible(context.queries, who, client_id)
    tasks = list(dict.fromkeys(t.value for t in body.tasks))  # each task named once
    try:
        reminder_id, notification_id = await run(lambda: context.directory.request_reminder(
            who.partner_id, client_id, who.user_id, tasks, body.comment, idempotency_key))
    except IdempotencyKeyReused as error:
        raise unprocessable("header.idempotency-key", str(error)) from None
    await written(context, notification_id)
    return ReminderAccepted(reminder_id=reminder_id)
