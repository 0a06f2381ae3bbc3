"""The notifier's HTTP endpoints beside health and metrics: one-click unsubscribe (RFC 8058).

`POST /unsubscribe/{token}` (what mail clients send with `List-Unsubscribe=One-Click`, and
what the confirmation form sends) turns the token's preferences off. `GET` only shows that
form: mail clients and scanners prefetch links, and a GET must never unsubscribe.
An unknown or forged token is a 404 that says nothing about why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from services.notifier.application.unsubscribe import Unsubscriber
from services.notifier.emails.render import render_unsubscribe_page

NO_STORE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex", "Referrer-Policy": "no-referrer"}


def add_unsubscribe_routes(api: FastAPI, unsubscriber: Unsubscriber,
                           clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
    def page(state: str, locale: str | None, clients: list[str], status: int = 200) -> HTMLResponse:
        html = render_unsubscribe_page(locale_tag=locale, state=state, clients=clients)
        return HTMLResponse(html, status_code=status, headers=NO_STORE)

    @api.get("/unsubscribe/{token}", tags=["unsubscribe"], response_class=HTMLResponse,
             summary="A page that asks to confirm (never unsubscribes by itself)")
    async def confirm(token: str) -> HTMLResponse:
        target = await asyncio.to_thread(unsubscriber.describe, token)
        if target is None:
            return page("invalid", None, [], 404)
        return page("confirm", target.locale, target.client_names)

    @api.post("/unsubscribe/{token}", tags=["unsubscribe"], response_class=HTMLResponse,
              summary="One-click unsubscribe (RFC 8058): turns the token's email preferences off")
    async def unsubscribe(token: str) -> HTMLResponse:
        target = await asyncio.to_thread(unsubscriber.unsubscribe, token, clock())
        if target is None:
            return page("invalid", None, [], 404)
        return page("done", target.locale, target.client_names)
