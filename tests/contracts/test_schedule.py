"""The digest rule both services share: plain standard library, and the next digest a member
is told about (View details) is the one the notifier will send."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from contracts.schedule import Frequency, due_slot, next_digest_at, next_slot

CPH = ZoneInfo("Europe/Copenhagen")


def cph(y: int, mo: int, d: int, h: int = 10, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=CPH)


def test_the_shared_rule_loads_nothing_but_the_standard_library() -> None:
    def modules(statement: str) -> set[str]:
        probe = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
        return set(json.loads(subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                                             text=True).stdout))

    # What the interpreter loads at start (site, the editable install's finder) does not count.
    loaded = modules("import contracts.schedule") - modules("pass")
    # zoneinfo reads sysconfig, whose data module is named per platform.
    foreign = sorted(name for name in loaded if name.split(".")[0] not in sys.stdlib_module_names
                     and not name.startswith(("_sysconfigdata", "contracts")))
    assert foreign == []
    assert not [name for name in loaded if name.startswith("contracts.") and name != "contracts.schedule"]


@pytest.mark.parametrize(("frequency", "set_at", "now", "expected"), [
    # Set on a Thursday: the first digest is the next Monday, whatever the frequency.
    ("daily", cph(2026, 12, 3, 17), cph(2026, 12, 3, 17, 1), cph(2026, 12, 7)),
    ("weekly", cph(2026, 12, 3, 17), cph(2026, 12, 3, 17, 1), cph(2026, 12, 7)),
    ("monthly", cph(2026, 12, 3, 17), cph(2026, 12, 3, 17, 1), cph(2026, 12, 7)),
    # Set long ago: the frequency's next slot after now.
    ("daily", cph(2026, 1, 5, 9), cph(2026, 12, 3, 17), cph(2026, 12, 4)),
    ("weekly", cph(2026, 1, 5, 9), cph(2026, 12, 3, 17), cph(2026, 12, 7)),
    ("monthly", cph(2026, 1, 5, 9), cph(2026, 12, 3, 17), cph(2026, 12, 7)),
    ("monthly", cph(2026, 1, 5, 9), cph(2026, 12, 8, 9), cph(2027, 1, 4)),
    # Exactly at a slot, that slot is going out now: the next one is announced.
    ("daily", cph(2026, 1, 5, 9), cph(2026, 12, 4), cph(2026, 12, 7)),
    # Across the spring DST change the digest stays at 10:00 local (08:00Z).
    ("weekly", cph(2026, 3, 25), cph(2026, 3, 25, 12), cph(2026, 3, 30)),
])
def test_the_next_digest_is_the_first_monday_then_the_frequencys_next_slot(
        frequency: str, set_at: datetime, now: datetime, expected: datetime) -> None:
    got = next_digest_at(frequency, set_at, now)
    assert got == expected and got.utcoffset() == expected.utcoffset()
    assert got.isoformat() == expected.isoformat()


@pytest.mark.parametrize("frequency", list(Frequency))
def test_the_announced_digest_is_one_the_notifier_makes_due_at_that_instant(frequency: Frequency) -> None:
    set_at, now = cph(2026, 11, 18, 15), cph(2026, 12, 3, 17)
    announced = next_digest_at(frequency, set_at, now)
    # The notifier, having covered everything due so far, finds this one due then and not before.
    covered = due_slot(frequency, set_at, None, now)
    assert due_slot(frequency, set_at, covered, announced) == announced
    assert announced == next_slot(frequency, now)
