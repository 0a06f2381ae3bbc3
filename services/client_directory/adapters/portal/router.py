"""Serves the Clients page and its assets; in dev mode only, adds the `/dev` routes.

The page is plain files: no server-side rendering, so everything it shows comes through the
public API (docs/CONTRACT.md) exactly as another front end would get it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from events.store import ReadModel
from services.client_directory.adapters.portal.dev import dev_router
from services.client_directory.config import Settings

STATIC = Path(__file__).resolve().parent / "static"
# The page runs no inline script or style and talks only to its own origin.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class Assets(StaticFiles):
    """Static files revalidated on every load (ETag), so an edited script is never stale."""

    def file_response(self, full_path: Any, stat_result: Any, scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def page_router(dev_mode: bool) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def root() -> RedirectResponse:
        return RedirectResponse("/portal")

    @router.get("/portal")
    async def portal() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8",
                            headers=PAGE_HEADERS)

    @router.get("/portal/config.json")
    async def config() -> dict[str, bool]:
        # Tells the page whether to offer the member picker or ask for a token.
        return {"dev_mode": dev_mode}

    return router


def mount_portal(api: FastAPI, settings: Settings, read_model: ReadModel) -> None:
    """Add the page (and, in dev mode, the /dev routes) to the service's API."""
    api.include_router(page_router(settings.dev_mode))
    api.mount("/portal/static", Assets(directory=STATIC), name="portal-static")
    if settings.dev_mode:
        api.include_router(dev_router(read_model, settings.jwt_secret, Path(settings.dev_mail_dir),
                                      settings.token_max_lifetime_s))
