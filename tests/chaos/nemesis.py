"""The nemesis: a schedule of faults drawn from the seed, then played against the cluster.
Each fault heals before the next one starts, so the system is never down for good; the
schedule (times, kinds, targets, durations) is fixed by the seed and printed before the run.
Leader faults name a service; which instance leads is found when the fault starts.

Broker faults are left out: the local broker (Tansu) keeps nothing across a restart."""

from __future__ import annotations

import random
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from tests.chaos.cluster import Instance, Postgres, TarpitSink, wait_until

KINDS = ("kill", "pause", "kill-leader", "pause-leader", "postgres-restart", "smtp-outage", "smtp-tarpit")


@dataclass
class Fault:
    at: float  # seconds after the workload starts
    kind: str
    target: str  # an instance name, a service name, or "postgres"/"smtp"
    duration: float

    def __str__(self) -> str:
        return f"t={self.at:6.1f}s  {self.kind:<16} {self.target:<18} {self.duration:4.1f}s"


def schedule(seed: int, duration: float, instances: list[str], postgres: bool,
             gap: tuple[float, float] = (4.0, 9.0), quiet_tail: float = 5.0) -> list[Fault]:
    """Faults from t=gap[0] until `quiet_tail` seconds before the end, one at a time."""
    rng = random.Random(f"nemesis-{seed}")
    kinds = [k for k in KINDS if postgres or k != "postgres-restart"]
    faults: list[Fault] = []
    t = rng.uniform(*gap)
    while True:
        kind = rng.choice(kinds)
        if kind in ("kill", "pause"):
            target = rng.choice(instances)
        elif kind.endswith("leader"):
            target = rng.choice(["client_directory", "notifier"])
        else:
            target = "postgres" if kind == "postgres-restart" else "smtp"
        length = {"kill": rng.uniform(0.5, 3.0), "pause": rng.uniform(1.0, 5.0), "kill-leader": rng.uniform(0.5, 3.0),
                  "pause-leader": rng.uniform(1.0, 5.0), "postgres-restart": 0.0,
                  "smtp-outage": rng.uniform(2.0, 8.0), "smtp-tarpit": rng.uniform(3.0, 10.0)}[kind]
        if t + length > duration - quiet_tail:
            return faults
        faults.append(Fault(round(t, 1), kind, target, round(length, 1)))
        t += length + rng.uniform(*gap)


class Nemesis:
    def __init__(self, faults: list[Fault], instances: dict[str, Instance], postgres: Postgres | None,
                 sink: TarpitSink, log: Any) -> None:
        self.faults = faults
        self.instances = instances
        self.postgres = postgres
        self.sink = sink
        self.log = log
        self.done: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self, started: float) -> None:
        for fault in self.faults:
            if self.stop.wait(max(0.0, started + fault.at - time.monotonic())):
                return
            begun = time.monotonic()
            target = self.inject(fault)
            self.done.append({"at": round(begun - started, 1), "kind": fault.kind, "target": target,
                              "took": round(time.monotonic() - begun, 1)})
            self.counts[fault.kind] = self.counts.get(fault.kind, 0) + 1
            self.log(f"nemesis: {fault.kind} {target} at {begun - started:.1f}s, healed after "
                     f"{time.monotonic() - begun:.1f}s")

    def leader(self, service: str) -> Instance | None:
        found: list[Instance] = []

        def look() -> bool:
            found[:] = [i for i in self.instances.values() if i.service.endswith(service) and i.leads()]
            return bool(found)

        wait_until(look, 15, 0.5)
        return found[0] if found else None

    def inject(self, fault: Fault) -> str:
        kind, target = fault.kind, fault.target
        if kind.endswith("leader"):
            chosen = self.leader(target)
            if chosen is None:
                return f"{target} (no leader found)"
            target, kind = chosen.name, kind.removesuffix("-leader")
        if kind == "kill":
            instance = self.instances[target]
            instance.kill()
            time.sleep(fault.duration)
            instance.start()
        elif kind == "pause":
            instance = self.instances[target]
            instance.pause()
            time.sleep(fault.duration)
            instance.cont()
        elif kind == "postgres-restart":
            assert self.postgres is not None
            self.postgres.restart()
        elif kind == "smtp-outage":
            self.sink.stop()
            time.sleep(fault.duration)
            self.sink.start()
        elif kind == "smtp-tarpit":
            self.sink.delay = 0.5  # per command; under SMTP_TIMEOUT, so slow but working
            time.sleep(fault.duration)
            self.sink.delay = 0.0
        return target

    def heal(self) -> None:
        """Everything back: no process stopped or dead, the SMTP server up and quick."""
        self.stop.set()
        for instance in self.instances.values():
            if instance.stopped:
                instance.signal(signal.SIGCONT)
                instance.stopped = False
            if not instance.alive():
                instance.start()
        if not self.sink.up:
            self.sink.start()
        self.sink.delay = 0.0
