"""The notifier's HTTP endpoints beside health and metrics: one-click unsubscribe (RFC 8058).

`POST /unsubscribe/{token}` (what mail clients send with `List-Unsubscribe=One-Click`, and
what the confirmation form sends) turns the token's preferences off. `GET` only shows that
form: mail clients and scanners prefetch links, and a GET must never unsubscribe.
An unknown or forged token is a 404 that says nothing about why; a link whose clients were
all chosen again since its email is a 410 page that says so and changes nothing.

Every response forbids framing (`frame-ancestors 'none'`, `X-Frame-Options: DENY`): a page
with a button that unsubscribes must not be clickable through another site's frame.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from starlette.middleware.base import RequestResponseEndpoint

from services.notifier.application.unsubscribe import Unsubscriber
from services.notifier.emails.render import render_unsubscribe_page

NO_STORE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex", "Referrer-Policy": "no-referrer"}
NO_FRAMING = {"Content-Security-Policy": "frame-ancestors 'none'", "X-Frame-Options": "DENY"}


def forbid_framing(api: FastAPI) -> None:
    """Every response of `api` (the unsubscribe pages, /docs, errors) refuses to be framed."""

    @api.middleware("http")
    async def no_framing(request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        for name, value in NO_FRAMING.items():
            response.headers.setdefault(name, value)
        return response


def add_unsubscribe_routes(api: FastAPI, unsubscriber: Unsubscriber,
                           clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
    forbid_framing(api)

    def page(state: str, locale: str | None, clients: list[str], status: int = 200) -> HTMLResponse:
        html = render_unsubscribe_page(locale_tag=locale, state=state, clients=clients)
        return HTMLResponse(html, status_code=status, headers={**NO_STORE, **NO_FRAMING})

    @api.get("/unsubscribe/{token}", tags=["unsubscribe"], response_class=HTMLResponse,
             summary="A page that asks to confirm (never unsubscribes by itself)")
    async def confirm(token: str) -> HTMLResponse:
        target = await asyncio.to_thread(unsubscriber.describe, token)
        if target is None:
            return page("invalid", None, [], 404)
        if target.state == "outdated":
            return page("outdated", target.locale, target.outdated, 410)
        return page("confirm", target.locale, target.client_names)

    @api.post("/unsubscribe/{token}", tags=["unsubscribe"], response_class=HTMLResponse,
              summary="One-click unsubscribe (RFC 8058): turns the token's email preferences off")
    async def unsubscribe(token: str) -> HTMLResponse:
        target = await asyncio.to_thread(unsubscriber.unsubscribe, token, clock())
        if target is None:
            return page("invalid", None, [], 404)
        if target.state == "outdated":
            return page("outdated", target.locale, target.outdated, 410)
        return page("done", target.locale, target.client_names)
