"""`make run`: the whole stack on embedded defaults, in the foreground.

The Kafka-compatible broker on 127.0.0.1:9092 (memory only), an SMTP sink on 127.0.0.1:1025
keeping each message under var/mail/, and both services on SQLite under var/. Ctrl-C stops
everything. Both services get the stack's own PORTAL_JWT_SECRET (var/portal-jwt-secret, made
on the first run) and PORTAL_DEV_MODE=true (the dev portal).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from deploy.localbroker import start_broker, wait_for_port
from deploy.smtp_sink import start_sink

ROOT = Path(__file__).resolve().parent.parent
# LOCAL_VAR_DIR: another folder for the stores, mail, secret and broker log (tests of this module).
VAR = Path(os.environ.get("LOCAL_VAR_DIR") or ROOT / "var")
BROKER_PORT = int(os.environ.get("LOCAL_KAFKA_PORT", "9092"))
SMTP_PORT = int(os.environ.get("LOCAL_SMTP_PORT", "1025"))


SECRET_FILE = VAR / "portal-jwt-secret"


def local_secret(path: Path = SECRET_FILE) -> str:
    """PORTAL_JWT_SECRET from the environment, else this checkout's own, made on first use.

    Kept in var/ (not per run) so tokens and unsubscribe links survive a restart."""
    if os.environ.get("PORTAL_JWT_SECRET"):
        return os.environ["PORTAL_JWT_SECRET"]
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def say(text: str) -> None:
    print(f"[stack] {text}", flush=True)


def forget_broker_positions(db: Path) -> None:
    """The local broker keeps nothing across restarts, so its offsets start at 0 again:
    positions recorded against the previous broker would skip new records. Events already
    applied stay applied (CloudEvent ids still deduplicate)."""
    if not db.exists():
        return
    with sqlite3.connect(db) as conn, contextlib.suppress(sqlite3.OperationalError):  # never consumed
        conn.execute("DELETE FROM tracking WHERE application_name LIKE 'kafka:%'")


def pipe(prefix: str, stream: object) -> None:
    for line in iter(stream.readline, b""):  # type: ignore[attr-defined]
        sys.stdout.write(f"[{prefix}] {line.decode(errors='replace')}")
        sys.stdout.flush()


def interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the stack in order, as Ctrl-C does


def main() -> int:
    signal.signal(signal.SIGTERM, interrupted)
    VAR.mkdir(exist_ok=True)
    say(f"starting the Kafka-compatible broker (Tansu) on 127.0.0.1:{BROKER_PORT}")
    try:
        broker = start_broker(port=BROKER_PORT, log=VAR / "broker.log", own_session=True)
    except Exception as error:
        say(f"the broker did not start: {error} (is port {BROKER_PORT} taken? see var/broker.log)")
        return 1
    say(f"starting the SMTP sink on 127.0.0.1:{SMTP_PORT}, messages under var/mail/")
    controller, _ = start_sink(SMTP_PORT, VAR / "mail")

    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "CLIENT_DIRECTORY_DB": os.environ.get("CLIENT_DIRECTORY_DB", f"sqlite:///{VAR / 'client_directory.db'}"),
        "NOTIFIER_DB": os.environ.get("NOTIFIER_DB", f"sqlite:///{VAR / 'notifier.db'}"),
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(SMTP_PORT),
        "SMTP_TLS": "none",
        "PORTAL_JWT_SECRET": local_secret(),
        "PORTAL_DEV_MODE": "true",
        "PYTHONUNBUFFERED": "1",
        # Their output comes through a pipe (below): readable lines when ours is a terminal.
        "LOG_FORMAT": os.environ.get("LOG_FORMAT") or ("text" if sys.stdout.isatty() else "json"),
    }
    # Go to client and the emails' links open the platform's pages there: in dev mode, the
    # client directory's stand-in (adapters/portal/dev_account.py). One base for both services.
    env.setdefault("PORTAL_DEV_MAIL_DIR", str(VAR / "mail"))  # where the sink below writes
    env.setdefault("PORTAL_BASE_URL", f"http://127.0.0.1:{env.get('CLIENT_DIRECTORY_HTTP_PORT', '8000')}")
    for name in ("client_directory.db", "notifier.db"):
        forget_broker_positions(VAR / name)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    for name in ("client_directory", "notifier"):
        # Own session (as the broker's): Ctrl-C reaches only this process, which stops the
        # services first and the broker last, so a clean stop logs no refused connection.
        processes[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        threading.Thread(target=pipe, args=(name, processes[name].stdout), daemon=True).start()

    ports = {"client_directory": int(env.get("CLIENT_DIRECTORY_HTTP_PORT", "8000")),
             "notifier": int(env.get("NOTIFIER_HTTP_PORT", "8001"))}
    try:
        for name, port in ports.items():
            wait_for_port(port, timeout=60, process=processes[name])
        say(f"ready: client_directory http://127.0.0.1:{ports['client_directory']} (docs at /docs), "
            f"notifier http://127.0.0.1:{ports['notifier']}; Ctrl-C stops everything")
        while all(p.poll() is None for p in processes.values()):
            time.sleep(0.5)
        dead = [n for n, p in processes.items() if p.poll() is not None]
        say(f"{', '.join(dead)} stopped (exit {[processes[n].returncode for n in dead]}); stopping the stack")
        return 1
    except KeyboardInterrupt:
        say("stopping")
        return 0
    except Exception as error:
        say(f"start-up failed: {error}")
        return 1
    finally:
        # A second Ctrl-C while stopping must not leave the broker behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        controller.stop()
        broker.stop()  # last: the services' consumers are gone, nothing reconnects to it
        say("stopped")


if __name__ == "__main__":
    sys.exit(main())
