"""An SMTP server (aiosmtpd) in its own process that accepts and counts messages, and writes
how many it took and when the first and the last arrived to a JSON file (5 times a second).

    python -m tests.bench.smtp_counter PORT OUT.json
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = time.time()  # wall clock: the bench process compares it with its own
        with self.lock:
            self.count += 1
            self.first = self.first or now
            self.last = now
        return "250 OK"

    def snapshot(self) -> dict[str, float]:
        with self.lock:
            return {"count": self.count, "first": self.first, "last": self.last}


def main(argv: list[str]) -> int:
    port, out = int(argv[0]), Path(argv[1])
    counter = Counter()
    controller = Controller(counter, hostname="127.0.0.1", port=port)
    controller.start()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        while not stopping.is_set():
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps(counter.snapshot()))
            tmp.replace(out)
            stopping.wait(0.2)
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
