"""Bearer JWT (HS256) of the portal: claims sub, partner_id, role, exp. Anything else, or
anything wrong with them, is a 401: the token is the only source of who the caller is."""

from __future__ import annotations

import jwt
from fastapi import HTTPException

from services.client_directory.projections.clients import Caller

ROLES = ("admin", "accountant")
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="partner-portal"'}


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers=CHALLENGE)


def caller_from(authorization: str | None, secret: str) -> Caller:
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("missing bearer token")
    try:
        # Only HS256: `alg: none` and every other algorithm are refused by name.
        claims = jwt.decode(token.strip(), secret, algorithms=["HS256"],
                            options={"require": ["exp", "sub", "partner_id", "role"]})
    except jwt.ExpiredSignatureError:
        raise unauthorized("token expired") from None
    except jwt.InvalidTokenError as error:
        raise unauthorized(f"invalid token: {error}") from None
    sub, partner_id, role = claims["sub"], claims["partner_id"], claims["role"]
    if not all(isinstance(v, str) and v and "\x00" not in v for v in (sub, partner_id, role)):
        raise unauthorized("invalid token: sub, partner_id and role must be non-empty strings")
    if role not in ROLES:
        raise unauthorized(f"invalid token: role must be one of {', '.join(ROLES)}")
    return Caller(partner_id=partner_id, user_id=sub, role=role)
