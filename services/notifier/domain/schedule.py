"""Digest schedule: when a member's email digest for a client is due.

The rule lives in `contracts/schedule.py` (standard library only), so the client directory can
announce the next digest without importing the notifier; this module is the notifier's name
for it.
"""

from __future__ import annotations

from contracts.schedule import (
    DIGEST_TIME,
    ZONE,
    Frequency,
    due_slot,
    first_due,
    is_slot,
    next_digest_at,
    next_due,
    next_slot,
    previous_slot,
)

__all__ = [
    "DIGEST_TIME",
    "ZONE",
    "Frequency",
    "due_slot",
    "first_due",
    "is_slot",
    "next_digest_at",
    "next_due",
    "next_slot",
    "previous_slot",
]
