"""The former name of the notifier's wiring, kept while tests/harness.py imports it: the
composition root is services/notifier/bootstrap.py."""

from __future__ import annotations

from services.notifier.application.ports import Clock
from services.notifier.bootstrap import CONSUMES, SERVICE, NotifierService, bootstrap, now_utc
from services.notifier.config import Settings

__all__ = ["CONSUMES", "SERVICE", "NotifierService", "build"]


def build(settings: Settings, *, session_timeout_ms: int = 10_000, retry_base_delay: float = 1.0,
          clock: Clock = now_utc) -> NotifierService:
    """The whole graph at once, as before (the harness builds it in a thread)."""
    service = bootstrap(settings, clock=clock, session_timeout_ms=session_timeout_ms,
                        retry_base_delay=retry_base_delay)
    assert service.api is not None and service.runtime is not None
    return service
