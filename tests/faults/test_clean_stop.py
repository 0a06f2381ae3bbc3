"""A clean stop is quiet, and each process writes one log format: a service stopped with
SIGTERM logs no error; `make run` stopped by Ctrl-C (SIGINT to the terminal's whole process
group) stops the services before the broker, so no "Connection refused" error either; every
line a service writes into a pipe is a JSON object (FastStream's, aiokafka's and uvicorn's too)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from deploy.localbroker import LocalBroker, free_port, wait_for_port
from tests.conftest import unique
from tests.faults.processes import ROOT, ServiceProcess, wait_until

pytestmark = pytest.mark.integration


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def json_lines(text: str) -> list[dict[str, object]]:
    """Every non-empty line as a JSON object; fails on the first line that is not one."""
    entries = []
    for line in text.splitlines():
        if line.strip():
            entry = json.loads(line)  # a coloured FastStream line or a traceback fails here
            assert isinstance(entry, dict), line
            entries.append(entry)
    return entries


@pytest.mark.parametrize("module", ["services.client_directory", "services.notifier"])
def test_a_service_stopped_with_sigterm_logs_no_error_and_only_json_lines(
        module: str, broker: LocalBroker, tmp_path: Path) -> None:
    name = module.split(".")[1]
    env = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, f"{name.upper()}_DB": f"sqlite:///{tmp_path / 'store.db'}",
           f"{name.upper()}_GROUP_ID": unique(name), "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(free_port())}
    service = ServiceProcess(module, env, tmp_path / "service.log")
    service.start()
    try:
        assert service.process is not None
        wait_for_port(service.port, timeout=60, process=service.process)
        wait_until(lambda: ready(service.port), timeout=60, what=f"{name} ready")
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(timeout=30) == 0
    finally:
        service.stop()
    entries = json_lines((tmp_path / "service.log").read_text())
    assert entries, "the service wrote nothing"
    assert [e for e in entries if e["level"] in ("error", "critical")] == []
    assert {str(e["logger"]) for e in entries} & {"faststream", "aiokafka", "events.runtime"}


def test_make_run_stopped_by_ctrl_c_stops_the_broker_last_and_logs_no_error(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("LOCAL_KAFKA_PORT", "LOCAL_SMTP_PORT", "CLIENT_DIRECTORY_HTTP_PORT",
                                            "NOTIFIER_HTTP_PORT")}
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "LOCAL_VAR_DIR": str(tmp_path / "var"),
           "PORTAL_JWT_SECRET": "clean-stop-test-secret-long-enough-for-hs256"}
    env.pop("LOG_FORMAT", None)
    # Its own session, as a terminal's foreground job: the Ctrl-C below reaches the whole group.
    stack = subprocess.Popen([sys.executable, "-m", "deploy.local"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True, text=True)
    try:
        wait_until(lambda: ready(ports["CLIENT_DIRECTORY_HTTP_PORT"]) and ready(ports["NOTIFIER_HTTP_PORT"]),
                   timeout=90, what="make run ready")
        time.sleep(2)  # the consumers fetching, as they are when someone presses Ctrl-C
        os.killpg(stack.pid, signal.SIGINT)
        output, _ = stack.communicate(timeout=60)
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGKILL)
            stack.wait()
    assert stack.returncode == 0, output
    lines = output.splitlines()
    assert lines[-1] == "[stack] stopped", output
    services = [line.split("] ", 1)[1] for line in lines if line.startswith(("[client_directory] ", "[notifier] "))]
    entries = json_lines("\n".join(services))
    assert [e for e in entries if e["level"] in ("error", "critical")] == [], output
    assert not any("Connection refused" in str(e["msg"]) for e in entries)
