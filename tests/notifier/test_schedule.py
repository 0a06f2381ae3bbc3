"""Digest schedule: concrete dates around DST, month and year ends, plus property tests
against a deliberately naive reference that walks local calendar days one by one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.notifier.domain.schedule import (
    ZONE,
    Frequency,
    due_slot,
    first_due,
    is_slot,
    next_due,
    next_slot,
    previous_slot,
)

CPH = ZoneInfo("Europe/Copenhagen")


def cph(y: int, mo: int, d: int, h: int = 10, mi: int = 0, fold: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=CPH, fold=fold)


def z(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


# --------------------------------------------------------------------------- examples


class TestFirstDue:
    def test_spring_dst_change_moves_10_local_to_08z(self) -> None:
        # Wednesday before the 2026-03-29 change (CET): the Monday after is CEST.
        assert first_due(cph(2026, 3, 25, 15)) == z(2026, 3, 30, 8)

    def test_autumn_dst_change_moves_10_local_to_09z(self) -> None:
        assert first_due(cph(2026, 10, 21, 15)) == z(2026, 10, 26, 9)

    def test_monday_0959_is_due_the_same_morning(self) -> None:
        assert first_due(cph(2026, 3, 30, 9, 59)) == z(2026, 3, 30, 8)

    def test_monday_1000_exactly_waits_a_week(self) -> None:
        # "strictly after": a preference set at the slot itself does not catch it.
        assert first_due(cph(2026, 3, 30, 10, 0)) == z(2026, 4, 6, 8)

    def test_monday_1001_waits_a_week(self) -> None:
        assert first_due(cph(2026, 3, 30, 10, 1)) == z(2026, 4, 6, 8)

    def test_one_microsecond_before_the_slot_still_catches_it(self) -> None:
        just_before = z(2026, 3, 30, 8) - timedelta(microseconds=1)
        assert first_due(just_before) == z(2026, 3, 30, 8)

    def test_input_in_another_zone_is_compared_as_an_instant(self) -> None:
        # 09:30 in New York on Sunday is 15:30 Copenhagen Sunday -> next day's slot.
        ny = datetime(2026, 3, 29, 9, 30, tzinfo=ZoneInfo("America/New_York"))
        assert first_due(ny) == z(2026, 3, 30, 8)
        # Monday 03:30 in New York is 09:30 in Copenhagen -> still before 10:00.
        ny_monday = datetime(2026, 3, 30, 3, 30, tzinfo=ZoneInfo("America/New_York"))
        assert first_due(ny_monday) == z(2026, 3, 30, 8)

    def test_set_during_the_october_fold_hour(self) -> None:
        # 02:30 happens twice on 2026-10-25; both are before Monday's slot.
        assert first_due(cph(2026, 10, 25, 2, 30, fold=0)) == z(2026, 10, 26, 9)
        assert first_due(cph(2026, 10, 25, 2, 30, fold=1)) == z(2026, 10, 26, 9)

    def test_year_end(self) -> None:
        assert first_due(cph(2026, 12, 29, 9)) == cph(2027, 1, 4)

    def test_result_is_in_copenhagen_zone_and_aware(self) -> None:
        result = first_due(z(2026, 3, 25, 12))
        assert result.tzinfo is ZONE
        assert (result.hour, result.minute, result.second, result.microsecond) == (10, 0, 0, 0)

    def test_naive_datetime_is_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            first_due(datetime(2026, 3, 25, 12))


class TestNextSlot:
    def test_daily_skips_the_weekend_across_spring_dst(self) -> None:
        assert next_slot(Frequency.DAILY, z(2026, 3, 27, 9)) == z(2026, 3, 30, 8)

    def test_daily_next_day(self) -> None:
        assert next_slot("daily", z(2026, 3, 30, 8)) == z(2026, 3, 31, 8)

    def test_daily_same_day_before_ten(self) -> None:
        assert next_slot("daily", cph(2026, 3, 31, 9, 59)) == cph(2026, 3, 31)

    def test_daily_across_autumn_dst(self) -> None:
        assert next_slot("daily", cph(2026, 10, 23)) == z(2026, 10, 26, 9)

    def test_daily_new_years_day_is_a_weekday(self) -> None:
        assert next_slot("daily", cph(2026, 12, 31)) == cph(2027, 1, 1)
        assert next_slot("daily", cph(2027, 1, 1)) == cph(2027, 1, 4)

    def test_weekly(self) -> None:
        assert next_slot("weekly", cph(2026, 10, 19)) == z(2026, 10, 26, 9)
        assert next_slot("weekly", cph(2026, 12, 28)) == cph(2027, 1, 4)

    def test_monthly_first_monday(self) -> None:
        # April 2026 starts on a Wednesday.
        assert next_slot("monthly", cph(2026, 3, 30)) == cph(2026, 4, 6)
        assert next_slot("monthly", cph(2026, 4, 6)) == cph(2026, 5, 4)

    def test_monthly_when_the_first_is_a_monday(self) -> None:
        assert next_slot("monthly", cph(2026, 5, 4)) == cph(2026, 6, 1)
        assert next_slot("monthly", cph(2026, 5, 31, 23, 59)) == cph(2026, 6, 1)
        assert next_slot("monthly", cph(2026, 6, 1, 9, 59)) == cph(2026, 6, 1)
        assert next_slot("monthly", cph(2026, 6, 1)) == cph(2026, 7, 6)

    def test_monthly_across_year_end(self) -> None:
        assert next_slot("monthly", cph(2026, 12, 7)) == cph(2027, 1, 4)

    def test_monthly_march_2027_first_is_monday_before_dst(self) -> None:
        assert next_slot("monthly", cph(2027, 2, 1)) == z(2027, 3, 1, 9)
        assert next_slot("monthly", cph(2027, 3, 1)) == z(2027, 4, 5, 8)

    def test_previous_slot_is_inclusive(self) -> None:
        assert previous_slot("daily", z(2026, 3, 30, 8)) == z(2026, 3, 30, 8)
        assert previous_slot("daily", z(2026, 3, 30, 7, 59)) == z(2026, 3, 27, 9)
        assert previous_slot("monthly", cph(2026, 6, 30)) == cph(2026, 6, 1)

    def test_is_slot(self) -> None:
        assert is_slot("daily", z(2026, 3, 31, 8))
        assert not is_slot("daily", z(2026, 3, 31, 9))
        assert not is_slot("weekly", z(2026, 3, 31, 8))
        assert is_slot("monthly", cph(2026, 6, 1))
        assert not is_slot("monthly", cph(2026, 6, 8))

    def test_unknown_frequency_is_refused(self) -> None:
        with pytest.raises(ValueError):
            next_slot("hourly", z(2026, 3, 30, 8))


class TestDueSlot:
    def test_nothing_due_before_the_first_monday(self) -> None:
        set_at = cph(2026, 3, 25, 15)
        assert due_slot("daily", set_at, None, cph(2026, 3, 26)) is None
        assert due_slot("daily", set_at, None, z(2026, 3, 30, 7, 59)) is None

    def test_first_monday_is_due_at_ten(self) -> None:
        set_at = cph(2026, 3, 25, 15)
        assert due_slot("daily", set_at, None, z(2026, 3, 30, 8)) == z(2026, 3, 30, 8)

    def test_daily_preference_is_not_due_on_the_days_before_the_first_monday(self) -> None:
        # Set on Wednesday: Thursday and Friday are daily slots, but the first digest
        # waits for Monday.
        set_at = cph(2026, 3, 25, 15)
        assert due_slot("daily", set_at, None, cph(2026, 3, 27, 12)) is None

    def test_after_sending_the_next_day_is_due(self) -> None:
        set_at = cph(2026, 3, 25, 15)
        sent = z(2026, 3, 30, 8)
        assert due_slot("daily", set_at, sent, cph(2026, 3, 31, 9, 59)) is None
        assert due_slot("daily", set_at, sent, cph(2026, 3, 31, 10)) == cph(2026, 3, 31)

    def test_catch_up_after_downtime_returns_only_the_latest_slot(self) -> None:
        set_at = cph(2026, 3, 25, 15)
        sent = cph(2026, 3, 30)
        # Down from Tuesday to Friday noon: Tue..Fri were missed, one digest for Friday.
        now = cph(2026, 4, 3, 12)
        assert due_slot("daily", set_at, sent, now) == cph(2026, 4, 3)
        # Once Friday is recorded as sent, nothing more is due until Monday.
        assert due_slot("daily", set_at, cph(2026, 4, 3), now) is None
        assert next_due("daily", set_at, cph(2026, 4, 3)) == cph(2026, 4, 6)

    def test_catch_up_of_a_never_sent_first_digest(self) -> None:
        set_at = cph(2026, 3, 25, 15)
        now = cph(2026, 4, 22, 18)  # Wednesday, four weeks later
        assert due_slot("weekly", set_at, None, now) == cph(2026, 4, 20)
        assert due_slot("daily", set_at, None, now) == cph(2026, 4, 22)

    def test_monthly_first_due_is_a_plain_monday(self) -> None:
        set_at = cph(2026, 4, 8, 12)
        assert first_due(set_at) == cph(2026, 4, 13)
        assert due_slot("monthly", set_at, None, cph(2026, 4, 13)) == cph(2026, 4, 13)
        # Down until later in April: the catch-up is the first Monday digest itself.
        assert due_slot("monthly", set_at, None, cph(2026, 4, 30)) == cph(2026, 4, 13)
        sent = cph(2026, 4, 13)
        assert due_slot("monthly", set_at, sent, cph(2026, 4, 20)) is None
        assert next_due("monthly", set_at, sent) == cph(2026, 5, 4)
        assert due_slot("monthly", set_at, sent, cph(2026, 5, 4)) == cph(2026, 5, 4)

    def test_monthly_catch_up_over_months(self) -> None:
        set_at = cph(2026, 4, 8, 12)
        assert due_slot("monthly", set_at, None, cph(2026, 7, 1)) == cph(2026, 6, 1)

    def test_weekly_across_autumn_dst(self) -> None:
        set_at = cph(2026, 10, 14, 12)
        sent = first_due(set_at)
        assert sent == z(2026, 10, 19, 8)
        assert due_slot("weekly", set_at, sent, z(2026, 10, 26, 8, 59)) is None
        assert due_slot("weekly", set_at, sent, z(2026, 10, 26, 9)) == z(2026, 10, 26, 9)

    def test_last_sent_from_an_earlier_preference_does_not_count(self) -> None:
        # A digest went out on 2026-03-30 under an old preference; the member changes
        # the preference on Wednesday: the new one starts on the next Monday.
        set_at = cph(2026, 4, 1, 12)
        old_sent = cph(2026, 3, 30)
        assert next_due("daily", set_at, old_sent) == cph(2026, 4, 6)
        assert due_slot("daily", set_at, old_sent, cph(2026, 4, 2, 12)) is None

    def test_now_in_another_zone(self) -> None:
        set_at = cph(2026, 3, 25, 15)
        now = datetime(2026, 3, 30, 4, 0, tzinfo=timezone(timedelta(hours=-4)))  # 08:00Z
        assert due_slot("daily", set_at, None, now) == z(2026, 3, 30, 8)


# ---------------------------------------------------------------- naive reference model


def _ref_is_slot_day(frequency: str, day: date) -> bool:
    if frequency == "daily":
        return day.isoweekday() <= 5
    if frequency == "weekly":
        return day.isoweekday() == 1
    first_monday = date(day.year, day.month, 1)
    while first_monday.isoweekday() != 1:
        first_monday += timedelta(days=1)
    return day == first_monday


def _ref_ten(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 10, 0, tzinfo=CPH)


def _ref_slots_after(frequency: str, after: datetime) -> Iterator[datetime]:
    """Every slot strictly after `after`, in order: walk local days from the day before."""
    day = after.astimezone(CPH).date() - timedelta(days=1)
    while True:
        if _ref_is_slot_day(frequency, day) and _ref_ten(day).timestamp() > after.timestamp():
            yield _ref_ten(day)
        day += timedelta(days=1)


def ref_first_due(set_at: datetime) -> datetime:
    return next(_ref_slots_after("weekly", set_at))


def ref_due_times(
    frequency: str, set_at: datetime, last_sent: datetime | None
) -> Iterator[datetime]:
    first = ref_first_due(set_at)
    if last_sent is None or last_sent.timestamp() < first.timestamp():
        yield first
        yield from _ref_slots_after(frequency, first)
    else:
        yield from _ref_slots_after(frequency, last_sent)


def ref_due_slot(
    frequency: str, set_at: datetime, last_sent: datetime | None, now: datetime
) -> datetime | None:
    latest = None
    for due in ref_due_times(frequency, set_at, last_sent):
        if due.timestamp() > now.timestamp():
            return latest
        latest = due
    raise AssertionError("unreachable")


# ------------------------------------------------------------------------- strategies

ZONES = st.sampled_from(
    [UTC, CPH, ZoneInfo("America/New_York"), ZoneInfo("Asia/Tokyo"), timezone(timedelta(hours=-12))]
)
MIN = datetime(2024, 1, 1)
MAX = datetime(2031, 12, 31)
instants = st.datetimes(min_value=MIN, max_value=MAX, timezones=ZONES)
frequencies = st.sampled_from(list(Frequency))
# Within a few months: long enough for catch-ups over several monthly slots.
gaps = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=120))

PROPS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _assert_ten_local(value: datetime) -> None:
    local = value.astimezone(CPH)
    assert (local.hour, local.minute, local.second, local.microsecond) == (10, 0, 0, 0)
    assert local.utcoffset() in (timedelta(hours=1), timedelta(hours=2))


@PROPS
@given(set_at=instants)
# A Monday slot in October: the next one is 7 days and 1 hour later in UTC.
@example(set_at=datetime(2028, 10, 23, 8, 0, tzinfo=UTC))
def test_first_due_matches_reference(set_at: datetime) -> None:
    result = first_due(set_at)
    assert result == ref_first_due(set_at)
    _assert_ten_local(result)
    assert result.astimezone(CPH).isoweekday() == 1
    assert result > set_at
    # At most a week of wall time, plus the hour an autumn DST change adds.
    assert result - set_at <= timedelta(days=7, hours=1)


@PROPS
@given(frequency=frequencies, after=instants)
def test_next_slot_matches_reference(frequency: Frequency, after: datetime) -> None:
    result = next_slot(frequency, after)
    assert result == next(_ref_slots_after(frequency, after))
    _assert_ten_local(result)
    assert result > after
    assert is_slot(frequency, result)
    assert previous_slot(frequency, result) == result
    # Nothing of the frequency in between: the slot just before is at or before `after`.
    assert previous_slot(frequency, result - timedelta(microseconds=1)) <= after


@PROPS
@given(frequency=frequencies, a=instants, gap=gaps)
def test_next_slot_is_monotonic(frequency: Frequency, a: datetime, gap: timedelta) -> None:
    assert next_slot(frequency, a) <= next_slot(frequency, a + gap)


@PROPS
@given(frequency=frequencies, set_at=instants, sent_gap=st.none() | gaps, now_gap=gaps)
def test_due_slot_matches_reference(
    frequency: Frequency, set_at: datetime, sent_gap: timedelta | None, now_gap: timedelta
) -> None:
    # last_sent, when given, is a real due time of this preference (what the scheduler
    # records), somewhere after set_at.
    last_sent = None
    if sent_gap is not None:
        last_sent = due_slot(frequency, set_at, None, set_at + sent_gap)
    now = set_at + now_gap + (sent_gap or timedelta(0))
    expected = ref_due_slot(frequency, set_at, last_sent, now)
    result = due_slot(frequency, set_at, last_sent, now)
    assert result == expected
    if result is not None:
        _assert_ten_local(result)
        assert result <= now
        assert last_sent is None or result > last_sent
        weekday = result.astimezone(CPH).isoweekday()
        if result == first_due(set_at):
            assert weekday == 1
        else:
            assert is_slot(frequency, result)
        # Never two due slots for one catch-up: once `result` is recorded as sent,
        # nothing else is due as of the same `now`.
        assert due_slot(frequency, set_at, result, now) is None
        assert next_due(frequency, set_at, result) > now


@PROPS
@given(frequency=frequencies, set_at=instants, a=gaps, b=gaps)
def test_due_slot_is_monotonic_in_now(
    frequency: Frequency, set_at: datetime, a: timedelta, b: timedelta
) -> None:
    earlier, later = sorted((a, b))
    first = due_slot(frequency, set_at, None, set_at + earlier)
    second = due_slot(frequency, set_at, None, set_at + later)
    if first is not None:
        assert second is not None
        assert second >= first


@PROPS
@given(
    frequency=frequencies,
    set_at=instants,
    wakeups=st.lists(
        st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=20)),
        min_size=1,
        max_size=25,
    ),
)
def test_a_scheduler_loop_sends_increasing_distinct_due_times(
    frequency: Frequency, set_at: datetime, wakeups: list[timedelta]
) -> None:
    """Simulate a scheduler that wakes at arbitrary times (including long outages):
    it sends strictly increasing due times, each a real due time, at most one per wakeup."""
    now = set_at
    last_sent: datetime | None = None
    sent: list[datetime] = []
    for step in wakeups:
        now = now + step
        due = due_slot(frequency, set_at, last_sent, now)
        if due is not None:
            assert due <= now
            assert due >= next_due(frequency, set_at, last_sent)
            sent.append(due)
            last_sent = due
        assert due_slot(frequency, set_at, last_sent, now) is None
    assert sent == sorted(set(sent))
    due_times: set[datetime] = set()
    for due in ref_due_times(frequency, set_at, None):
        if due > now:
            break
        due_times.add(due)
    assert set(sent) <= due_times


@PROPS
@given(frequency=frequencies, set_at=instants, count=st.integers(min_value=1, max_value=30))
def test_waking_exactly_at_each_due_time_sends_every_slot(
    frequency: Frequency, set_at: datetime, count: int
) -> None:
    """No outage: a scheduler that wakes at next_due every time sends every due time."""
    last_sent: datetime | None = None
    expected = ref_due_times(frequency, set_at, None)
    for _ in range(count):
        wake = next_due(frequency, set_at, last_sent)
        assert due_slot(frequency, set_at, last_sent, wake - timedelta(microseconds=1)) is None
        due = due_slot(frequency, set_at, last_sent, wake)
        assert due == wake == next(expected)
        last_sent = due
