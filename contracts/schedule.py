"""Digest schedule: when a member's email digest for a client is due.

The notifier's rule, shared as plain standard-library code so the client directory can say
when the next digest goes out (View details) without importing the notifier.

All slots are 10:00 wall-clock time in Europe/Copenhagen (the spec's "Central European
time"), so they move between 08:00Z (summer) and 09:00Z (winter) with DST.

- ``daily``: every weekday (Mon-Fri) at 10:00,
- ``weekly``: every Monday at 10:00,
- ``monthly``: the first Monday of each month at 10:00.

Whatever the frequency, the first digest after a preference is set goes out on the first
Monday 10:00 strictly after that moment (as the help article promises); the frequency's
own slots follow from there.

Every function takes and returns timezone-aware datetimes; comparisons are done on the
UTC instant so callers may pass any zone. Returned slots carry the Copenhagen zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

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

ZONE = ZoneInfo("Europe/Copenhagen")
DIGEST_TIME = time(10, 0)

# Any frequency has a slot within this many days of any instant (monthly: a first
# Monday is at most 35 days after the previous one); it bounds the day-by-day scans.
_MAX_GAP_DAYS = 40


class Frequency(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")


def _is_slot_day(frequency: Frequency, day: date) -> bool:
    if frequency is Frequency.DAILY:
        return day.weekday() < 5
    if frequency is Frequency.WEEKLY:
        return day.weekday() == 0
    # The first Monday of a month always falls on day 1..7.
    return day.weekday() == 0 and day.day <= 7


def _slot_on(day: date) -> datetime:
    # 10:00 is never inside a DST gap or fold in Copenhagen (changes happen at 02:00/03:00),
    # so the local time is unambiguous.
    return datetime.combine(day, DIGEST_TIME, tzinfo=ZONE)


def _utc(value: datetime) -> datetime:
    # Same-tzinfo comparisons in Python use wall time and ignore `fold`; comparing UTC
    # instants avoids that trap around the October fold.
    return value.astimezone(UTC)


def is_slot(frequency: Frequency | str, at: datetime) -> bool:
    """Whether ``at`` is exactly one of the frequency's slots."""
    _require_aware("at", at)
    frequency = Frequency(frequency)
    local = at.astimezone(ZONE)
    return _is_slot_day(frequency, local.date()) and _utc(_slot_on(local.date())) == _utc(at)


def next_slot(frequency: Frequency | str, after: datetime) -> datetime:
    """The first slot of ``frequency`` strictly after ``after``."""
    _require_aware("after", after)
    frequency = Frequency(frequency)
    after_utc = _utc(after)
    day = after.astimezone(ZONE).date()
    for _ in range(_MAX_GAP_DAYS):
        if _is_slot_day(frequency, day):
            slot = _slot_on(day)
            if _utc(slot) > after_utc:
                return slot
        day += timedelta(days=1)
    raise AssertionError(f"no {frequency} slot within {_MAX_GAP_DAYS} days of {after}")


def previous_slot(frequency: Frequency | str, at: datetime) -> datetime:
    """The last slot of ``frequency`` at or before ``at``."""
    _require_aware("at", at)
    frequency = Frequency(frequency)
    at_utc = _utc(at)
    day = at.astimezone(ZONE).date()
    for _ in range(_MAX_GAP_DAYS):
        if _is_slot_day(frequency, day):
            slot = _slot_on(day)
            if _utc(slot) <= at_utc:
                return slot
        day -= timedelta(days=1)
    raise AssertionError(f"no {frequency} slot within {_MAX_GAP_DAYS} days before {at}")


def first_due(set_at: datetime) -> datetime:
    """The first digest after a preference is set: the first Monday 10:00 strictly after."""
    return next_slot(Frequency.WEEKLY, set_at)


def next_due(frequency: Frequency | str, set_at: datetime, last_sent: datetime | None) -> datetime:
    """The earliest due time not yet covered by a digest.

    It may lie in the past (a catch-up is pending); the scheduler should wake at
    ``max(now, next_due(...))``. ``last_sent`` is the due time the last digest covered;
    a ``last_sent`` before ``first_due(set_at)`` belongs to an earlier preference and
    does not count (the new preference starts on its own first Monday).
    """
    frequency = Frequency(frequency)
    first = first_due(set_at)
    if last_sent is None:
        return first
    _require_aware("last_sent", last_sent)
    if _utc(last_sent) < _utc(first):
        return first
    return next_slot(frequency, last_sent)


def due_slot(
    frequency: Frequency | str,
    set_at: datetime,
    last_sent: datetime | None,
    now: datetime,
) -> datetime | None:
    """The due time a digest should cover now, or None when nothing is due.

    The due times are ``next_due(...)`` followed by every slot of the frequency after it.
    When several of them passed while the service was down, only the latest one at or
    before ``now`` is returned: one catch-up digest, not one per missed slot.
    """
    _require_aware("now", now)
    frequency = Frequency(frequency)
    start = next_due(frequency, set_at, last_sent)
    if _utc(start) > _utc(now):
        return None
    # Every due time after `start` is a plain slot of the frequency, so the latest due
    # time <= now is the latest slot <= now, unless that slot precedes `start` (which can
    # happen when `start` is a first-Monday-after-set_at that is not a frequency slot).
    latest = previous_slot(frequency, now)
    return latest if _utc(latest) > _utc(start) else start


def next_digest_at(frequency: Frequency | str, set_at: datetime, now: datetime) -> datetime:
    """When the next digest under a preference set at ``set_at`` goes out, as seen at ``now``.

    Its first Monday if that is still ahead, else the frequency's first slot strictly after
    ``now`` (a catch-up the notifier owes is sent at once, so it is never announced).
    """
    _require_aware("now", now)
    first = first_due(set_at)
    if _utc(first) > _utc(now):
        return first
    return next_slot(frequency, now)
