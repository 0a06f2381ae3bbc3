"""Dev-mode routes of a local run (`make run`): who can I be, a token for them, the mail
the SMTP sink caught, and a stand-in for the client's account (dev_account.py). Mounted only
when Settings.dev_mode is on, which the configuration allows only on SQLite and a loopback
address: these routes hand out tokens to anyone.
"""

from __future__ import annotations

import email
import email.policy
import html
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import jwt
from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from events.store import ReadModel
from services.client_directory.adapters.portal.dev_account import account_router
from services.client_directory.projections.text import sort_key

TOKEN_HOURS = 12
MAIL_SHOWN = 200
MAIL_FILE = re.compile(r"^[\w.-]+\.eml$")


class DevMembers:
    """The firms and active members the read model knows: the picker's choices."""

    def __init__(self, read_model: ReadModel) -> None:
        self.read_model = read_model

    def firms(self) -> list[dict[str, Any]]:
        rows = self.read_model.query(
            "SELECT partner_id, user_id, name, email, role, locale FROM cd_members WHERE active = 1")
        # Admins first, then by name in the page's natural order (Élodie between Edgar and Fabrice).
        rows.sort(key=lambda r: (r["partner_id"], r["role"] != "admin", sort_key(r["name"]), r["user_id"]))
        firms: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            firms.setdefault(row.pop("partner_id"), []).append(row)
        return [{"partner_id": partner_id, "members": members} for partner_id, members in firms.items()]

    def member(self, partner_id: str, user_id: str) -> dict[str, Any] | None:
        rows = self.read_model.query(
            "SELECT user_id, name, email, role, locale FROM cd_members "
            "WHERE partner_id = ? AND user_id = ? AND active = 1", (partner_id, user_id))
        return rows[0] if rows else None


class TokenRequest(BaseModel):
    partner_id: str = Field(min_length=1, max_length=200)
    user_id: str = Field(min_length=1, max_length=200)


def mint(secret: str, partner_id: str, user_id: str, role: str, now: datetime | None = None,
         max_lifetime_s: int = TOKEN_HOURS * 3600) -> str:
    """A portal token (the API's claims) like the platform's sign-in would issue, living
    TOKEN_HOURS or the service's cap on a token's lifetime, whichever is shorter."""
    now = now or datetime.now(UTC)
    lifetime = timedelta(seconds=min(TOKEN_HOURS * 3600, max_lifetime_s))
    claims = {"sub": user_id, "partner_id": partner_id, "role": role, "iat": now, "exp": now + lifetime}
    return jwt.encode(claims, secret, algorithm="HS256")


def read_mail(folder: Path, limit: int = MAIL_SHOWN) -> list[dict[str, Any]]:
    """The sink's .eml files, newest first: file name, subject, from, to, date, text body."""
    if not folder.is_dir():
        return []
    files = sorted(folder.glob("*.eml"), key=lambda f: (f.stat().st_mtime, f.name), reverse=True)[:limit]
    mails = []
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        text_part = message.get_body(("plain",))
        mails.append({
            "file": path.name,
            "subject": str(message["Subject"] or ""),
            "from": str(message["From"] or ""),
            "to": str(message["To"] or ""),
            "date": str(message["Date"] or ""),
            "text": text_part.get_content() if isinstance(text_part, EmailMessage) else "",
            "has_html": message.get_body(("html",)) is not None,
        })
    return mails


def mail_page(mails: list[dict[str, Any]], folder: Path) -> str:
    e = html.escape
    items = []
    for m in mails:
        html_link = (f' · <a href="/dev/mail/{e(m["file"])}/html" target="_blank" rel="noopener">HTML</a>'
                     if m["has_html"] else "")
        items.append(
            f'<article class="mail"><header><h2>{e(m["subject"]) or "(no subject)"}</h2>'
            f'<dl><dt>To</dt><dd class="mail-to">{e(m["to"])}</dd><dt>From</dt><dd>{e(m["from"])}</dd>'
            f'<dt>Date</dt><dd>{e(m["date"])}</dd></dl>'
            f'<p class="file">{e(m["file"])}{html_link}</p></header>'
            f'<pre class="mail-text">{e(m["text"])}</pre></article>')
    body = "\n".join(items) or f'<p class="empty">No mail in {e(str(folder))} yet.</p>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Dev mail · Partner portal</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="/portal/static/app.css"></head>
<body class="dev-mail"><header class="topbar"><a class="brand" href="/portal">Partner portal</a>
<span class="dev-badge">dev mode</span></header>
<main><div class="mail-head"><h1>Mail caught by the SMTP sink</h1>
<p>{len(mails)} message(s), newest first, from <code>{e(str(folder))}</code> ·
<a href="/dev/mail">Refresh</a> · <a href="/portal">Back to the Clients page</a></p></div>
{body}</main></body></html>"""


def dev_router(read_model: ReadModel, secret: str, mail_dir: Path, max_lifetime_s: int = TOKEN_HOURS * 3600
               ) -> APIRouter:
    """The /dev routes, and the stand-in for the platform's pages the portal's links open."""
    router = APIRouter(prefix="/dev", tags=["dev mode"])
    members = DevMembers(read_model)

    @router.get("/members", summary="Firms and active members known to the read model (dev mode)")
    def list_members() -> dict[str, Any]:
        return {"firms": members.firms()}

    @router.post("/token", summary="A token for a member of a firm, with their current role (dev mode)")
    def token(request: TokenRequest) -> dict[str, Any]:
        member = members.member(request.partner_id, request.user_id)
        if member is None:
            raise HTTPException(404, f"{request.user_id} is not an active member of {request.partner_id}")
        return {"token": mint(secret, request.partner_id, member["user_id"], member["role"],
                              max_lifetime_s=max_lifetime_s),
                "partner_id": request.partner_id, **member}

    @router.get("/mail", response_class=HTMLResponse, summary="The SMTP sink's messages (dev mode)")
    def mail() -> HTMLResponse:
        return HTMLResponse(mail_page(read_mail(mail_dir), mail_dir), headers={"Cache-Control": "no-store"})

    @router.get("/mail/{name}/html", response_class=HTMLResponse, summary="A message's HTML part (dev mode)")
    def mail_html(name: str) -> HTMLResponse:
        path = mail_dir / name
        if not MAIL_FILE.match(name) or not path.is_file():
            raise HTTPException(404, f"no message {name}")
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        part = message.get_body(("html",))
        if not isinstance(part, EmailMessage):
            raise HTTPException(404, f"message {name} has no HTML part")
        # A mail's HTML is foreign content: sandboxed, it runs no script and reaches nothing.
        return HTMLResponse(part.get_content(), headers={"Content-Security-Policy": "sandbox"})

    both = APIRouter()
    both.include_router(router)
    both.include_router(account_router(read_model))
    return both
