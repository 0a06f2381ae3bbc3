"""A sender process that SIGKILLs itself at a chosen point of one delivery (tests/notifier/
test_sender.py): nothing after that point runs, not even a `finally`, as with a real kill.

    python -m tests.notifier.killed_sender STORE_URL SMTP_PORT VICTIM_USER_ID {render,record}

- render: while the victim's email is rendered (the email before it is then on the wire, or
  its outcome being recorded);
- record: when the victim's email was accepted and its outcome is about to be recorded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from events.config import StoreUrl
from services.notifier.adapters.smtp import SmtpMailer, SmtpSettings
from services.notifier.application import sender as sender_module
from services.notifier.application.notifier import Notifier
from services.notifier.application.sender import MailSender
from services.notifier.application.unsubscribe import UnsubscribeTokens
from services.notifier.domain.model import Delivery
from tests.notifier.world import MAIL_FROM, SECRET


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str]) -> int:
    store, port, victim, where = argv[0], int(argv[1]), argv[2], argv[3]
    notifier = Notifier(StoreUrl.parse("NOTIFIER_DB", store))
    if where == "render":
        real_compose = sender_module.compose

        def compose(delivery: Delivery, **options: Any) -> Any:
            if delivery.user_id == victim:
                die()
            return real_compose(delivery, **options)

        sender_module.compose = compose  # type: ignore[assignment]
    elif where == "record":
        real_record = notifier.record

        def record(*aggregates: Any, **options: Any) -> Any:
            if any(isinstance(a, Delivery) and a.user_id == victim for a in aggregates):
                die()
            return real_record(*aggregates, **options)

        notifier.record = record  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown kill point {where!r}")
    settings = SmtpSettings(host="127.0.0.1", port=port, timeout=5.0, pool_size=1, local_hostname="notifier.test")
    sender = MailSender(notifier, SmtpMailer(settings), mail_from=MAIL_FROM, base_url="https://portal.test",
                        unsubscribe_base="https://notifier.test", tokens=UnsubscribeTokens(SECRET))
    asyncio.run(sender.send_all())
    return 0  # the victim was never reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
