"""Plain value objects the email renderer needs: who receives it and what it says."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum

__all__ = ["ClientFigures", "Money", "Recipient", "Task"]

_CURRENCY = re.compile(r"^[A-Z]{3}$")


class Task(StrEnum):
    """What an admin can remind accountants of; the order is the display order."""

    MISSING_RECEIPTS = "missing_receipts"
    READY_TO_EXPORT = "ready_to_export"
    WALLET_BALANCE = "wallet_balance"


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str  # ISO 4217

    def __post_init__(self) -> None:
        amount = self.amount
        if not isinstance(amount, Decimal):
            # Accept the contract's decimal strings (and ints); never floats, which
            # would silently carry binary rounding into an amount shown to people.
            if isinstance(amount, float) or not isinstance(amount, str | int):
                raise TypeError(f"amount must be a Decimal, str or int, got {amount!r}")
            try:
                amount = Decimal(amount)
            except InvalidOperation as exc:
                raise ValueError(f"amount is not a decimal number: {self.amount!r}") from exc
            object.__setattr__(self, "amount", amount)
        if not amount.is_finite():
            raise ValueError(f"amount must be finite, got {amount!r}")
        if not _CURRENCY.match(self.currency):
            raise ValueError(f"currency must be an ISO 4217 code, got {self.currency!r}")


@dataclass(frozen=True, slots=True)
class Recipient:
    user_id: str
    email: str
    name: str
    locale: str = "en"  # BCP 47 tag as received; resolved at render time

    def __post_init__(self) -> None:
        if not self.user_id:
            raise ValueError("user_id must not be empty")
        if "@" not in self.email:
            raise ValueError(f"not an email address: {self.email!r}")


@dataclass(frozen=True, slots=True)
class ClientFigures:
    """A client's current figures as the notifier knows them (wallet may be unknown)."""

    client_id: str
    name: str
    wallet_balance: Money | None = None
    missing_receipts: int = 0
    ready_to_export: int = 0

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ValueError("client_id must not be empty")
        for field in ("missing_receipts", "ready_to_export"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{field} must be an int >= 0, got {value!r}")
