"""Bearer JWT (HS256) of the portal: claims sub, partner_id, role, exp."""

from __future__ import annotations

import jwt
from fastapi import HTTPException

from services.client_directory.projections.clients import Caller

ROLES = ("admin", "accountant")


def caller_from(authorization: str | None, secret: str) -> Caller:
    if not authorization or not authorization.startswith("Bearer "):
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    token = authorization.removeprefix("Bearer ").strip()
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["exp", "sub", "partner_id", "role"]}
        )
    except jwt.ExpiredSignatureError:
        raise HTTPException(401, "token expired", headers={"WWW-Authenticate": "Bearer"}) from None
    except jwt.InvalidTokenError as error:
        raise HTTPException(401, f"invalid token: {error}", headers={"WWW-Authenticate": "Bearer"}) from None
    sub, partner_id, role = claims["sub"], claims["partner_id"], claims["role"]
    if not all(isinstance(v, str) and v for v in (sub, partner_id, role)) or role not in ROLES:
        raise HTTPException(401, "invalid token: bad claims", headers={"WWW-Authenticate": "Bearer"})
    return Caller(partner_id=partner_id, user_id=sub, role=role)
