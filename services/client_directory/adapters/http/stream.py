"""GET /v1/stream: Server-Sent Events telling an open Clients page that its tabs changed.

A browser's EventSource cannot send an Authorization header, so this route alone also takes
the bearer token as `?access_token=` (RFC 6750, 2.3). A URL may end up in logs and history:
the page should pass a short-lived token, and no other route accepts one there.
"""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime.

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import jwt
from fastapi import APIRouter, Header, HTTPException, Query
from fastapi.responses import StreamingResponse

from services.client_directory.adapters.auth import bearer_token
from services.client_directory.adapters.http.deps import ContextDep, current
from services.client_directory.adapters.http.problems import ERRORS
from services.client_directory.application.live import LiveTabs, Subscription, TooManyStreams

router = APIRouter(tags=["live"], responses=ERRORS)
KEEPALIVE_S = 15.0  # a comment line now and then keeps proxies from closing an idle stream
# A stream ends when its token expires (the role is re-read on every event, but a token must not
# outlive its `exp` by holding a connection open), and after an hour at most: EventSource
# reconnects by itself with Last-Event-ID, which checks the token and the member again.
MAX_STREAM_S = 3600.0


def ends_at(authorization: str | None) -> float:
    """When the stream must end: the verified token's `exp`, or an hour from now if sooner."""
    claims = jwt.decode(bearer_token(authorization), options={"verify_signature": False})
    return min(float(claims["exp"]), time.time() + MAX_STREAM_S)


def frame(event: dict[str, Any]) -> bytes:
    return f"id: {event['position']}\nevent: tabs\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()


@router.get("/v1/stream", response_class=StreamingResponse, summary="Server-Sent Events: the caller's tabs changed",
            responses={200: {"content": {"text/event-stream": {}}, "description": "`tabs` events (TabsChanged)"},
                       429: {"description": "too many open streams for this member"}})
async def stream(
    context: ContextDep,
    authorization: Annotated[str | None, Header()] = None,
    access_token: Annotated[str | None, Query(max_length=4096, description="the bearer token, for EventSource")] = None,
    last_event_id: Annotated[str | None, Header(max_length=20, pattern=r"^\d+$")] = None,
) -> StreamingResponse:
    if authorization is None and access_token is not None:
        authorization = f"Bearer {access_token}"
    who = await asyncio.to_thread(current, context.queries, context.verifier(authorization))
    deadline = ends_at(authorization)  # the token is verified: its claims can be read
    live = context.live
    assert live is not None, "bootstrap builds the live tabs"
    try:
        subscription = live.subscribe(who)
    except TooManyStreams as error:
        raise HTTPException(429, str(error), headers={"Retry-After": "10"}) from None
    try:
        first = await asyncio.to_thread(live.first_event, subscription, int(last_event_id) if last_event_id else None)
    except BaseException:
        live.unsubscribe(subscription)
        raise
    return StreamingResponse(events(live, subscription, first, deadline), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def events(live: LiveTabs, subscription: Subscription, first: dict[str, Any] | None,
                 deadline: float) -> AsyncIterator[bytes]:
    try:
        yield b"retry: 2000\n\n" + (frame(first) if first is not None else b"")
        while (left := deadline - time.time()) > 0:
            try:
                event = await asyncio.wait_for(subscription.queue.get(), timeout=min(KEEPALIVE_S, left))
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            yield frame(event)
    finally:  # the client went away (or the server stops): the slot is free again
        live.unsubscribe(subscription)
