"""The notifier's configuration: the unsubscribe secret and the retry period, checked at start."""

from __future__ import annotations

import pytest

from events.config import ConfigError
from services.notifier.config import DEV_SECRET, Settings

LONG = "a-secret-that-is-at-least-32-bytes-long"


def test_the_unsubscribe_secret_defaults_to_the_portal_jwt_secret() -> None:
    assert Settings.from_env({}).unsubscribe_secret == DEV_SECRET
    assert Settings.from_env({"PORTAL_JWT_SECRET": LONG}).unsubscribe_secret == LONG
    own = Settings.from_env({"PORTAL_JWT_SECRET": LONG, "NOTIFIER_UNSUBSCRIBE_SECRET": LONG + "-own"})
    assert own.unsubscribe_secret == LONG + "-own"


@pytest.mark.parametrize(("env", "message"), [
    ({"NOTIFIER_UNSUBSCRIBE_SECRET": "short"}, "NOTIFIER_UNSUBSCRIBE_SECRET is shorter than 32 bytes"),
    ({"PORTAL_JWT_SECRET": "short"}, "PORTAL_JWT_SECRET is shorter than 32 bytes"),
    ({"NOTIFIER_RETRY_HOURS": "0"}, "NOTIFIER_RETRY_HOURS=0 is out of range"),
    ({"NOTIFIER_RETRY_HOURS": "soon"}, "NOTIFIER_RETRY_HOURS='soon' is not a whole number"),
])
def test_bad_values_fail_at_start_with_one_clear_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_the_retry_period_is_read() -> None:
    assert Settings.from_env({"NOTIFIER_RETRY_HOURS": "72"}).retry_hours == 72
    assert Settings.from_env({}).retry_hours == 24
