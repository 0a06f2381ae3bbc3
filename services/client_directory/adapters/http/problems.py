"""RFC 9457 problem details (`application/problem+json`) for every error the API answers."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from contracts.api import Problem

log = logging.getLogger("client_directory.http")

PROBLEM: dict[str, Any] = {"model": Problem, "content": {"application/problem+json": {}}}
ERRORS: dict[int | str, dict[str, Any]] = {status: PROBLEM for status in (401, 403, 404, 409, 422)}
TITLES = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large",
    415: "Unsupported Media Type", 422: "Unprocessable Content", 500: "Internal Server Error",
}


def problem(status: int, detail: str | None = None, errors: list[dict[str, Any]] | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    body = Problem(title=TITLES.get(status, "Error"), status=status, detail=detail,
                   errors=errors).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, media_type="application/problem+json",
                        headers=headers)


def unprocessable(location: str, message: str) -> HTTPException:
    """A 422 naming the part of the request that is wrong, like a validation error."""
    return HTTPException(422, {"location": location, "message": message})


async def http_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.detail, dict):  # from unprocessable(): one named error
        return problem(exc.status_code, f"{exc.detail['location']}: {exc.detail['message']}", [exc.detail])
    return problem(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))


async def validation_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"location": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
    detail = "; ".join(f"{e['location']}: {e['message']}" for e in errors[:5])
    return problem(422, detail, errors)


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed", request.method, request.url.path)
    return problem(500, "the request could not be completed; it is logged")


def install(api: FastAPI) -> None:
    api.add_exception_handler(StarletteHTTPException, http_problem)
    api.add_exception_handler(RequestValidationError, validation_problem)
    api.add_exception_handler(Exception, unexpected)
