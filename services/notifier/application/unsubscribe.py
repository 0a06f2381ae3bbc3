"""One-click unsubscribe (RFC 8058): tokens that cannot be guessed, and turning preferences off.

A token names what it stops and is signed with HMAC-SHA256 under a key derived from
NOTIFIER_UNSUBSCRIBE_SECRET: `<base64url(payload)>.<base64url(mac)>`, payload
`["d", partner, user, message_id, issued]` (every client of that digest: the stored Delivery
lists them, so the List-Unsubscribe header stays short however many clients a digest covers)
or `["c", partner, user, client_id, issued]` (one client, the link beside it in the body). No
plain id ever works on its own.

`issued` (Unix seconds: the digest's due time) binds the link to the choices the email was
made under: a preference set again after it (turned back on, a new frequency) is a later
choice, and the old link leaves it alone.

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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
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
    issued: int  # Unix seconds: the email's due time; later choices are not undone

    @property
    def issued_at(self) -> datetime:
        return datetime.fromtimestamp(self.issued, UTC)


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
        payload = json.dumps([claim.kind, claim.partner_id, claim.user_id, claim.ref, claim.issued],
                             separators=(",", ":"), ensure_ascii=False).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def for_digest(self, partner_id: str, user_id: str, message_id: str, issued: datetime) -> str:
        return self.sign(TokenClaim("d", partner_id, user_id, message_id, int(issued.timestamp())))

    def for_client(self, partner_id: str, user_id: str, client_id: str, issued: datetime) -> str:
        return self.sign(TokenClaim("c", partner_id, user_id, client_id, int(issued.timestamp())))

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
            # Links made before `issued` existed have four fields: refused, as after a rotation.
            kind, partner_id, user_id, ref, issued = json.loads(payload)
        except (ValueError, TypeError):
            return None
        if kind not in ("d", "c") or not all(isinstance(v, str) and v for v in (partner_id, user_id, ref)):
            return None
        if type(issued) is not int or issued < 0:
            return None
        return TokenClaim(kind, partner_id, user_id, ref, issued)


@dataclass(frozen=True)
class Target:
    """What a valid token stops: whose emails, about which clients."""

    partner_id: str
    user_id: str
    client_ids: list[str]  # the clients the link may still turn off
    client_names: list[str]
    locale: str
    turned_off: int = 0  # preferences this request turned off (0: they were off already)
    # Clients whose emails were turned on again (or set anew) after the link's email: the
    # link no longer speaks for them.
    outdated: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        return "outdated" if self.outdated and not self.client_ids else "current"


class Unsubscriber:
    def __init__(self, notifier: EventStoreApplication, tokens: UnsubscribeTokens) -> None:
        self.notifier = notifier
        self.tokens = tokens

    def describe(self, token: str) -> Target | None:
        """What the token would stop, or None when it is not one of ours (reads only)."""
        claim = self.tokens.verify(token)
        if claim is None:
            return None
        named = self._clients_of(claim)
        if named is None:
            return None
        current = [c for c in named if not self._chosen_since(claim, c)]
        member: Member | None = self._get(member_key(claim.partner_id, claim.user_id))
        return Target(claim.partner_id, claim.user_id, current, self._names(claim.partner_id, current),
                      member.locale if member else "en",
                      outdated=self._names(claim.partner_id, [c for c in named if c not in current]))

    def unsubscribe(self, token: str, now: datetime) -> Target | None:
        """Turn the token's preferences off (idempotent), except those chosen again since its
        email. None when the token is not valid."""
        claim = self.tokens.verify(token)
        target = self.describe(token)
        if claim is None or target is None:
            return None
        for _ in range(5):
            changed: list[Any] = []
            for client_id in target.client_ids:
                preference: Preference | None = self._get(
                    preference_key(target.partner_id, client_id, target.user_id))
                if preference is None or not preference.email_enabled or self._later(claim, preference):
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
            return replace(target, turned_off=turned_off)
        raise RuntimeError("the preferences kept changing; try again")

    def _clients_of(self, claim: TokenClaim) -> list[str] | None:
        if claim.kind == "c":
            return [claim.ref]
        delivery: Delivery | None = self._get(delivery_key(claim.ref))
        if delivery is None or delivery.kind != "digest" or (delivery.partner_id, delivery.user_id) != (
            claim.partner_id, claim.user_id
        ):
            return None
        return list(delivery.client_ids)

    def _chosen_since(self, claim: TokenClaim, client_id: str) -> bool:
        preference: Preference | None = self._get(preference_key(claim.partner_id, client_id, claim.user_id))
        return preference is not None and preference.email_enabled and self._later(claim, preference)

    @staticmethod
    def _later(claim: TokenClaim, preference: Preference) -> bool:
        """The preference was set after the link's email was made: a later choice."""
        return preference.set_at is not None and preference.set_at > claim.issued_at

    def _names(self, partner_id: str, client_ids: list[str]) -> list[str]:
        names = []
        for client_id in client_ids:
            client: ClientFile | None = self._get(client_key(partner_id, client_id))
            names.append(client.name if client is not None else client_id)
        return names

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
