"""The HTTP API of the Clients page (FastAPI): one router per resource, the dependencies they
share in `deps.py`, problem details in `problems.py`. Handlers translate; the use cases live
in the application and the queries in the projection.

Errors are RFC 9457 problem details (`application/problem+json`): 401 without a valid token,
403 for what the caller's current role may not do (or a caller who is no longer a member),
404 for any client the caller may not see (whether it belongs to another firm or does not
exist), 409 for a command the client's state forbids, 422 for a request that names what is
wrong with it.
"""

from __future__ import annotations

from fastapi import FastAPI

from services.client_directory.adapters.http import (
    accountants,
    bulk,
    clients,
    export,
    invitations,
    notifications,
    problems,
    reminder_history,
    stream,
)
from services.client_directory.adapters.http.clients import page_json
from services.client_directory.adapters.http.deps import HttpContext

__all__ = ["HttpContext", "build_api", "page_json"]


def build_api(context: HttpContext) -> FastAPI:
    """The app: every router, the problem handlers, and the objects the handlers depend on."""
    api = FastAPI(
        title="Partner portal: client directory",
        version="1.0.0",
        description="The Clients page of the partner portal and its commands. "
        "Every endpoint under /v1 takes `Authorization: Bearer <JWT>` (HS256; claims sub, "
        "partner_id, role, exp). Errors are RFC 9457 problem details.",
    )
    api.state.client_directory = context
    problems.install(api)
    # export before clients: /v1/clients.csv is its own route, not a client id.
    for module in (export, clients, invitations, accountants, notifications, reminder_history, bulk, stream):
        api.include_router(module.router)
    return api
