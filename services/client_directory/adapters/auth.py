"""Bearer JWT (HS256) of the portal: claims sub, partner_id, role, exp. Anything else, or
anything wrong with them, is a 401. The token says who the caller is; what they may do is
decided by their current membership (see adapters/http/deps.py)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import jwt
from fastapi import HTTPException

from services.client_directory.projections.clients import Caller

ROLES = ("admin", "accountant")
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="partner-portal"'}
# Verified tokens remembered per process: a portal session sends the same token with every
# request until it expires. The least recently used go first; 4,096 take about 3 MB.
VERIFIED_TOKENS = 4096
MAX_LIFETIME_S = 24 * 3600


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers=CHALLENGE)


def bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("missing bearer token")
    return token.strip()


def verify(token: str, secret: str, max_lifetime_s: int = MAX_LIFETIME_S,
           clock: Callable[[], float] = time.time) -> tuple[Caller, int]:
    """The caller a token names and its `exp`, or a 401. `exp` (and `iat` if given) must be
    whole numbers, as RFC 7519 NumericDate says (PyJWT also takes numeric strings), and `exp`
    at most `max_lifetime_s` ahead: a token is never good for longer than that."""
    try:
        # Only HS256: `alg: none` and every other algorithm are refused by name.
        claims = jwt.decode(token, secret, algorithms=["HS256"],
                            options={"require": ["exp", "sub", "partner_id", "role"]})
    except jwt.ExpiredSignatureError:
        raise unauthorized("token expired") from None
    except jwt.InvalidTokenError as error:
        raise unauthorized(f"invalid token: {error}") from None
    for name in ("exp", "iat", "nbf"):
        if name in claims and type(claims[name]) is not int:
            raise unauthorized(f"invalid token: {name} must be a whole number of seconds")
    if claims["exp"] > clock() + max_lifetime_s:
        raise unauthorized(f"invalid token: exp is more than {max_lifetime_s} s ahead")
    sub, partner_id, role = claims["sub"], claims["partner_id"], claims["role"]
    if not all(isinstance(v, str) and v and "\x00" not in v for v in (sub, partner_id, role)):
        raise unauthorized("invalid token: sub, partner_id and role must be non-empty strings")
    if role not in ROLES:
        raise unauthorized(f"invalid token: role must be one of {', '.join(ROLES)}")
    return Caller(partner_id=partner_id, user_id=sub, role=role), claims["exp"]


class TokenVerifier:
    """The caller a request's Authorization header names (`verify`), with a bounded memory of
    the tokens it verified (signature, claims): a token seen again costs a dictionary lookup
    and the expiry check, which is made on every use, as PyJWT makes it (`exp <= now` is
    expired). Only tokens that passed are remembered (a refused token is checked in full each
    time); nothing else about a token changes with time (`nbf` and `iat` only become valid)."""

    def __init__(self, secret: str, size: int = VERIFIED_TOKENS, clock: Callable[[], float] = time.time,
                 max_lifetime_s: int = MAX_LIFETIME_S) -> None:
        self.clock = clock
        self._verified = functools.lru_cache(maxsize=size)(
            functools.partial(verify, secret=secret, max_lifetime_s=max_lifetime_s, clock=clock))

    def __call__(self, authorization: str | None) -> Caller:
        caller, expires = self._verified(bearer_token(authorization))
        if expires <= self.clock():
            raise unauthorized("token expired")
        return caller

    def remembered(self) -> int:
        return self._verified.cache_info().currsize
