"""Running a service as a real process for fault tests, and reading its store from outside."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from deploy.localbroker import free_port
from tests.secret import SECRET

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServiceProcess:
    module: str
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    kills: int = 0
    starts: int = 0
    port: int = field(default_factory=free_port)

    def start(self) -> None:
        port_var = "CLIENT_DIRECTORY_HTTP_PORT" if "client_directory" in self.module else "NOTIFIER_HTTP_PORT"
        env = {**os.environ, "PORTAL_JWT_SECRET": SECRET, **self.env, port_var: str(self.port),
               "KAFKA_SESSION_TIMEOUT_MS": "3000"}
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", self.module], cwd=ROOT, env=env,
                                            stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.kills += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def tracked_offsets(db: Path) -> dict[str, int]:
    """The Kafka positions the store has recorded (read-only, while the service writes)."""
    if not db.exists():
        return {}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        try:
            rows = conn.execute("SELECT application_name, notification_id FROM tracking").fetchall()
        except sqlite3.OperationalError:
            return {}
    return {name: position for name, position in rows}


def wait_until(check, timeout: float, every: float = 0.2, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"{what} not reached after {timeout}s")
