"""One-click unsubscribe (RFC 8058): tokens that cannot be guessed, and turning preferences off.

A token names what it stops and is signed with HMAC-SHA256 under a key derived from
NOTIFIER_UNSUBSCRIBE_SECRET: `<base64url(payload)>.<base64url(mac)>`, payload
`["d", partner, user, message_id]` (every client of that digest: the stored Delivery lists
them, so the List-Unsubscribe header stays short however many clients a digest covers) or
`["c", partner, user, client_id]` (one client, the link beside it in the body). No plain id
ever works on its own.

Turning a preference off is a command like the directory's PUT: it is recorded as
Preference.Set in the store and published as notification.preference_set.v1 through the
outbox, with its CloudEvent id marked as received, so when it comes back on
portal.notifications the notifier does not apply it a second time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from contracts.envelope import make_event
from contracts.events import Topic
from events.inbox import InboxEntry
from events.outbox import OutboundMessage
from events.store import EventStoreApplication
from services.notifier.domain.model import (
    ClientFile,
    Delivery,
    Member,
    Preference,
    client_key,
    delivery_key,
    member_key,
    preference_key,
)

log = logging.getLogger("notifier.unsubscribe")

SOURCE = "/partner-portal/notifier"
MAX_TOKEN_LENGTH = 900
_MAC_BYTES = 16  # 128 bits: far beyond guessing, and keeps the URL short


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class TokenClaim:
    kind: str  # "d": a digest's clients, "c": one client
    partner_id: str
    user_id: str
    ref: str  # the digest's Message-ID, or the client id


class UnsubscribeTokens:
    def __init__(self, secret: str) -> None:
        if len(secret.encode()) < 32:
            raise ValueError("the unsubscribe secret must be at least 32 bytes")
        # A key of its own, derived from the secret: the same secret may also sign the
        # portal's JWTs, and a MAC made here must never be valid anywhere else.
        self._key = hmac.new(secret.encode(), b"partner-portal/notifier/unsubscribe/v1", hashlib.sha256).digest()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def sign(self, claim: TokenClaim) -> str:
        payload = json.dumps([claim.kind, claim.partner_id, claim.user_id, claim.ref],
                             separators=(",", ":"), ensure_ascii=False).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def for_digest(self, partner_id: str, user_id: str, message_id: str) -> str:
        return self.sign(TokenClaim("d", partner_id, user_id, message_id))

    def for_client(self, partner_id: str, user_id: str, client_id: str) -> str:
        return self.sign(TokenClaim("c", partner_id, user_id, client_id))

    def verify(self, token: str) -> TokenClaim | None:
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
            return None
        body, mac = token.split(".")
        try:
            payload, given = _unb64(body), _unb64(mac)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(given, self._mac(payload)):
            return None
        try:
            kind, partner_id, user_id, ref = json.loads(payload)
        except (ValueError, TypeError):
            return None
        if kind not in ("d", "c") or not all(isinstance(v, str) and v for v in (partner_id, user_id, ref)):
            return None
        return TokenClaim(kind, partner_id, user_id, ref)


@dataclass(frozen=True)
class Target:
    """What a valid token stops: whose emails, about which clients."""

    partner_id: str
    user_id: str
    client_ids: list[str]
    client_names: list[str]
    locale: str
    turned_off: int = 0  # preferences this request turned off (0: they were off already)


class Unsubscriber:
    def __init__(self, notifier: EventStoreApplication, tokens: UnsubscribeTokens) -> None:
        self.notifier = notifier
        self.tokens = tokens

    def describe(self, token: str) -> Target | None:
        """What the token would stop, or None when it is not one of ours (reads only)."""
        claim = self.tokens.verify(token)
        if claim is None:
            return None
        if claim.kind == "c":
            client_ids = [claim.ref]
        else:
            delivery: Delivery | None = self._get(delivery_key(claim.ref))
            if delivery is None or delivery.kind != "digest" or (delivery.partner_id, delivery.user_id) != (
                claim.partner_id, claim.user_id
            ):
                return None
            client_ids = list(delivery.client_ids)
        member: Member | None = self._get(member_key(claim.partner_id, claim.user_id))
        names = []
        for client_id in client_ids:
            client: ClientFile | None = self._get(client_key(claim.partner_id, client_id))
            names.append(client.name if client is not None else client_id)
        return Target(claim.partner_id, claim.user_id, client_ids, names, member.locale if member else "en")

    def unsubscribe(self, token: str, now: datetime) -> Target | None:
        """Turn the token's preferences off (idempotent). None when the token is not valid."""
        target = self.describe(token)
        if target is None:
            return None
        for _ in range(5):
            changed: list[Any] = []
            for client_id in target.client_ids:
                preference: Preference | None = self._get(
                    preference_key(target.partner_id, client_id, target.user_id))
                if preference is None or not preference.email_enabled:
                    continue
                preference.set(False, preference.frequency, now)
                changed += [preference, *self._outbound(preference, now)]
            if not changed:
                return target
            try:
                self.notifier.record(*changed)
            except IntegrityError:
                continue  # a setting arrived meanwhile: decide again on what is there now
            turned_off = sum(isinstance(c, Preference) for c in changed)
            log.info("unsubscribed %s/%s from %d client(s)", target.partner_id, target.user_id, turned_off)
            return Target(target.partner_id, target.user_id, target.client_ids, target.client_names,
                          target.locale, turned_off)
        raise RuntimeError("the preferences kept changing; try again")

    @staticmethod
    def _outbound(preference: Preference, now: datetime) -> tuple[OutboundMessage, InboxEntry]:
        type_ = "notification.preference_set.v1"
        event_ = make_event(
            id=str(uuid.uuid4()), source=SOURCE, type=type_, subject=preference.client_id,
            partnerid=preference.partner_id, time=now,
            data={"client_id": preference.client_id, "user_id": preference.user_id, "email_enabled": False,
                  "frequency": preference.frequency},
        )
        received = InboxEntry(event_id=event_.id, event_type=type_, partner_id=preference.partner_id,
                              subject=preference.client_id, source=SOURCE, kafka_position="http:unsubscribe",
                              outcome="applied")
        return OutboundMessage.of(Topic.NOTIFICATIONS.value, event_), received

    def _get(self, aggregate_id: uuid.UUID) -> Any | None:
        try:
            return self.notifier.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
