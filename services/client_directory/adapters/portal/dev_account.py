"""Dev mode's stand-in for the platform's pages that the portal links to.

*Go to client* and the emails' links point at `PORTAL_BASE_URL/clients/{id}/account`, the
platform's client account, and the emails' "Open the partner portal" at
`PORTAL_BASE_URL/clients`. A local run has no platform, and `make run` points PORTAL_BASE_URL at
this service: these routes make those links land on a page that says where they would go,
instead of a 404. Mounted with the other dev routes only (dev_router); never in production.
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse

from events.store import ReadModel

PAGE_HEADERS = {
    # Nothing but the portal's own stylesheet: the page shows names, runs no script.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def account_page(client_id: str, clients: list[dict[str, Any]]) -> str:
    """The stand-in page: the client's name (every firm's, should two firms share the id)."""
    e = html.escape
    if clients:
        names = " / ".join(e(c["name"] or client_id) for c in clients)
        heading = f"{names}: client account"
        body = (f"<p>This is where the platform's client account of <strong>{names}</strong> would open "
                f"(client id <code>{e(client_id)}</code>).</p>")
    else:
        heading = "Client account"
        body = f"<p>No client <code>{e(client_id)}</code> is known to this local run.</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{heading} · Partner portal (dev)</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="/portal/static/app.css"></head>
<body class="dev-account"><header class="topbar"><a class="brand" href="/portal">Partner portal</a>
<span class="dev-badge">dev mode</span></header>
<main><h1>{heading}</h1>
{body}
<p>A development stand-in: with <code>PORTAL_BASE_URL</code> set to the platform, "Go to client"
and the emails' links lead to the platform's own page.</p>
<p><a href="/portal">Back to the Clients page</a> · <a href="/dev/mail">Mail caught by the SMTP sink</a></p>
</main></body></html>"""


def account_router(read_model: ReadModel) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/clients")
    async def clients() -> RedirectResponse:
        # The emails' "Open the partner portal": the platform's Clients page is this one here.
        return RedirectResponse("/portal")

    @router.get("/clients/{client_id}/account", response_class=HTMLResponse)
    def account(client_id: str) -> HTMLResponse:
        # Dev mode runs on SQLite only (config.py), hence the "?" parameter mark.
        rows = read_model.query("SELECT name FROM cd_clients WHERE client_id = ? ORDER BY partner_id",
                                (client_id,))
        return HTMLResponse(account_page(client_id, rows), status_code=200 if rows else 404,
                            headers=PAGE_HEADERS)

    return router
