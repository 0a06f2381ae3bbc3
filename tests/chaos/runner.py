"""One chaos run: start everything, run the workload under the nemesis for `duration` seconds,
heal, wait until every consumer has caught up, check, report."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from deploy.localbroker import LocalBroker, free_port, start_broker
from tests.chaos import checker, probe
from tests.chaos.api import ApiWorker, KClient
from tests.chaos.cluster import MAIL_FROM, ROOT, Instance, Postgres, TarpitSink, store_urls, wait_until
from tests.chaos.model import Model, due_time, first_due
from tests.chaos.nemesis import Nemesis, schedule
from tests.chaos.workload import Gate, History, Platform
from tests.secret import SECRET


@dataclass
class Options:
    seed: int
    duration: float
    store: str = "postgresql"
    planted: str = ""  # a bug of tests/chaos/planted.py, planted in the client directory
    firms: int = 6
    k_clients: int = 9
    workers: int = 3
    rate: float = 15.0  # platform events per second
    digest_every: float = 12.0
    catch_up: float = 240.0  # seconds allowed, after the faults, for lag to return to 0
    folder: Path | None = None
    quiet: bool = False


@dataclass
class Run:
    options: Options
    folder: Path
    lines: list[str] = field(default_factory=list)

    def say(self, line: str = "") -> None:
        self.lines.append(line)
        if not self.options.quiet:
            print(line, flush=True)


class Sampler:
    """Resident memory and open descriptors of every service process, every few seconds."""

    def __init__(self, instances: dict[str, Instance], every: float) -> None:
        self.instances, self.every = instances, every
        self.samples: dict[str, list[tuple[float, int, int]]] = {name: [] for name in instances}
        self.stop = threading.Event()

    def run(self, started: float) -> None:
        while not self.stop.wait(self.every):
            for name, instance in self.instances.items():
                found = instance.resources()
                if found:
                    self.samples[name].append((round(time.monotonic() - started), *found))

    def table(self, points: int = 6) -> list[str]:
        rows = []
        for name, samples in self.samples.items():
            if not samples:
                continue
            step = max(1, len(samples) // points)
            series = " ".join(f"{t}s:{rss // 1024}M/{fds}" for t, rss, fds in samples[::step])
            rows.append(f"  {name:<22} rss max {max(s[1] for s in samples) // 1024} MiB, fds max "
                        f"{max(s[2] for s in samples)}; over time (MiB/fds): {series}")
        return rows


def digests(run: Run, gate: Gate, history: History, cd: probe.Store, nt: probe.Store, bootstrap: str,
            env: dict[str, str], first: datetime, stop: threading.Event, first_started: threading.Event) -> None:
    """Every few seconds, with the commands held: wait until the notifier has every fact the
    commands so far produced, then `digests run --at` the next weekday's due time."""
    k = 0
    while not stop.wait(run.options.digest_every):
        k += digest_once(run, gate, history, cd, nt, bootstrap, env, due_time(first, k), first_started)


def digest_once(run: Run, gate: Gate, history: History, cd: probe.Store, nt: probe.Store, bootstrap: str,
                env: dict[str, str], due: datetime, first_started: threading.Event) -> int:
    with gate.exclusive():
        first_started.set()
        ends = probe.end_offsets(bootstrap, list(probe.NT_TOPICS))

        def ready() -> bool:
            relayed = cd.tracking().get("outbox:kafka", 0) >= cd.head(probe.OUTBOX_TOPIC)
            return relayed and not probe.consumed_to_end(nt, ends)

        if not wait_until(ready, 60, 0.5):
            run.say(f"digests: the notifier did not catch up within 60 s; run for {due} skipped")
            history.add(kind="digest-skipped", due=due.isoformat())
            return 0
        # The relay may have published more since `ends`: wait for those too.
        ends = probe.end_offsets(bootstrap, list(probe.NT_TOPICS))
        wait_until(lambda: not probe.consumed_to_end(nt, ends), 60, 0.5)
        at = (due + timedelta(minutes=10)).isoformat()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            command = [sys.executable, "-m", "services.notifier", "digests", "run", "--at", at, "--no-send"]
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=120)
            if done.returncode == 0:
                history.add(kind="digest", due=due.isoformat(), at=at)
                return 1
            time.sleep(1)
        run.say(f"digests: `digests run --at {at}` kept failing: {done.stderr.decode()[-300:]}")
        history.add(kind="digest-unsure", due=due.isoformat())
        return 1  # it may have made some: never reuse that due time


def caught_up(cd: probe.Store, nt: probe.Store, bootstrap: str, instances: dict[str, Instance]) -> list[str]:
    """What is still moving (empty when everything is at rest)."""
    waiting = [f"{name} not ready" for name, i in instances.items() if not i.ready()]
    ends = probe.end_offsets(bootstrap, list(probe.ALL_TOPICS))
    for name, store, topics in (("client_directory", cd, probe.CD_TOPICS), ("notifier", nt, probe.NT_TOPICS)):
        waiting += [f"{name} {b}" for b in probe.consumed_to_end(store, {k: v for k, v in ends.items()
                                                                          if k[0] in topics})]
    for name, store in (("client_directory", cd), ("notifier", nt)):
        if store.tracking().get("outbox:kafka", 0) < store.head(probe.OUTBOX_TOPIC):
            waiting.append(f"{name} outbox")
    if cd.tracking().get("projection:clients", 0) < cd.head():
        waiting.append("projection")
    deliveries = nt.topic_counts("notifier:Delivery.%")
    ended = deliveries.get("notifier:Delivery.Sent", 0) + deliveries.get("notifier:Delivery.Failed", 0)
    if deliveries.get("notifier:Delivery.Due", 0) > ended:
        waiting.append(f"{deliveries.get('notifier:Delivery.Due', 0) - ended} emails due")
    return waiting


def execute(options: Options) -> checker.Verdict:
    folder = options.folder or Path(tempfile.mkdtemp(prefix=f"chaos-{options.seed}-"))
    folder.mkdir(parents=True, exist_ok=True)
    run = Run(options, folder)
    rng = random.Random(options.seed)
    tag = f"{options.seed}-{uuid.UUID(int=rng.getrandbits(128)).hex[:6]}"
    names = ["client_directory-1", "client_directory-2", "notifier-1", "notifier-2"]
    faults = schedule(options.seed, options.duration, names, postgres=options.store == "postgresql")
    run.say(f"chaos run: seed {options.seed}, {options.duration:.0f} s, store {options.store}"
            f"{', planted bug ' + options.planted if options.planted else ''}; logs and history in {folder}")
    run.say(f"schedule ({len(faults)} faults):")
    for fault in faults:
        run.say(f"  {fault}")

    postgres: Postgres | None = None
    broker: LocalBroker | None = None
    sink = TarpitSink(free_port())
    instances: dict[str, Instance] = {}
    history = History(folder / "history.jsonl")
    try:
        t0 = time.monotonic()
        broker = start_broker(log=folder / "broker.log")
        if options.store == "postgresql":
            postgres = Postgres()
            postgres.start()
        cd_url, nt_url = store_urls(options.store, postgres, folder)
        sink.start()
        base = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "CLIENT_DIRECTORY_DB": cd_url, "NOTIFIER_DB": nt_url,
                "CLIENT_DIRECTORY_GROUP_ID": f"cd-{tag}", "NOTIFIER_GROUP_ID": f"nt-{tag}",
                "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(sink.port), "SMTP_TIMEOUT": "5", "MAIL_FROM": MAIL_FROM,
                "PORTAL_JWT_SECRET": SECRET, "PORTAL_BASE_URL": "https://portal.test"}
        for name in names:
            service = "services." + name.rsplit("-", 1)[0]
            instances[name] = Instance(name, service, dict(base), folder / f"{name}.log",
                                       planted=options.planted if "client_directory" in name else "")
            instances[name].start()
        if not wait_until(lambda: all(i.ready() for i in instances.values()), 120, 0.5):
            raise RuntimeError(f"services not ready after 120 s; see {folder}")
        cd, nt = probe.Store(cd_url, "client_directory"), probe.Store(nt_url, "notifier")
        run.say(f"started in {time.monotonic() - t0:.1f} s")

        platform = Platform(broker.bootstrap, history, random.Random(f"platform-{options.seed}"), options.firms,
                            options.k_clients, tag)
        # Margin: every preference of the run is set before the first due time.
        first = first_due(datetime.now(UTC) + timedelta(seconds=options.duration + 3600))
        history.add(kind="meta", seed=options.seed, first_due=first.isoformat())
        platform.setup()

        stop, gate, first_started = threading.Event(), Gate(), threading.Event()
        urls = [instances["client_directory-1"].url, instances["client_directory-2"].url]
        kclients = [KClient(f.partner, c, "invited" if pc.n % 3 == 2 else "connected")
                    for f in platform.firms for c, pc in f.clients.items() if pc.status == "api"]
        random.Random(f"owners-{options.seed}").shuffle(kclients)
        workers = [ApiWorker(f"w{n}", urls, kclients[n::options.workers], history, gate,
                             random.Random(f"worker-{options.seed}-{n}"), stop, first_started)
                   for n in range(options.workers)]
        nemesis = Nemesis(faults, instances, postgres, sink, run.say)
        sampler = Sampler(instances, every=max(2.0, options.duration / 60))
        digest_env = {**os.environ, **base}
        started = time.monotonic()
        threads = [threading.Thread(target=w.run, name=w.name) for w in workers]
        threads.append(threading.Thread(target=digests, args=(run, gate, history, cd, nt, broker.bootstrap,
                                                               digest_env, first, stop, first_started)))
        side = [threading.Thread(target=nemesis.run, args=(started,)), threading.Thread(target=sampler.run,
                                                                                        args=(started,))]
        for thread in threads + side:
            thread.daemon = True
            thread.start()
        while time.monotonic() - started < options.duration:
            platform.step()
            time.sleep(max(0.0, 1.0 / options.rate))
        stop.set()
        platform.close()
        nemesis.stop.set()
        side[0].join(timeout=120)
        nemesis.heal()
        for thread in threads:
            thread.join(timeout=180)
        run.say(f"workload and faults stopped at {time.monotonic() - started:.0f} s; waiting for lag 0")

        healed = time.monotonic()
        last: list[str] = []

        def settled() -> bool:
            nonlocal last
            last = caught_up(cd, nt, broker.bootstrap, instances)
            return not last

        rested = wait_until(settled, options.catch_up, 1.0)
        if rested:
            # One more digest run, at rest; then mail must stop changing.
            runs = sum(1 for e in history.entries if e["kind"] in ("digest", "digest-unsure"))
            digest_once(run, gate, history, cd, nt, broker.bootstrap, digest_env, due_time(first, runs), first_started)
            rested = wait_until(settled, options.catch_up, 1.0)
            count = -1
            while count != len(sink.snapshot()):
                count = len(sink.snapshot())
                time.sleep(3)
        sampler.stop.set()
        run.say(f"lag 0 after {time.monotonic() - healed:.0f} s" if rested else
                f"NOT at rest after {options.catch_up:.0f} s: {last[:6]}")
        history.close()
        verdict = check(run, history.entries, instances, nemesis, sink, broker.bootstrap, cd, nt, urls, rested)
        report(run, verdict, history.entries, instances, nemesis, sampler)
        return verdict
    finally:
        for instance in instances.values():
            instance.terminate()
        sink.stop()
        if broker is not None:
            broker.stop()
        if postgres is not None:
            postgres.stop()
        (folder / "report.txt").write_text("\n".join(run.lines) + "\n")


def check(run: Run, history: list[dict[str, Any]], instances: dict[str, Instance], nemesis: Nemesis,
          sink: TarpitSink, bootstrap: str, cd: probe.Store, nt: probe.Store, urls: list[str],
          rested: bool) -> checker.Verdict:
    verdict = checker.Verdict()
    if not rested:
        verdict.fail("lag did not return to 0 after the faults stopped")
    model = Model().fold(history)
    if model.unsure:
        run.say(f"note: {len(model.unsure)} commands' outcome stayed unknown: {model.unsure[:4]}")
    checker.check_tabs(verdict, model, urls)
    notifier_kills = sum(i.kills for n, i in instances.items() if n.startswith("notifier"))
    # One email accepted and not yet recorded may go again after each: a notifier crash, the
    # SMTP server vanishing or crawling mid-answer, the database going away mid-record.
    budget = notifier_kills + sum(nemesis.counts.get(k, 0) for k in ("smtp-outage", "smtp-tarpit", "postgres-restart"))
    emails = {key: m.email for key, m in model.members.items()}
    mails = sink.snapshot()
    with open(run.folder / "mails.jsonl", "w") as out:  # the server's side, for diffing by hand
        for mail in mails:
            out.write(json.dumps(mail.__dict__) + "\n")
    checker.check_mail(verdict, model, mails, budget, emails)
    checker.check_reminder_history(verdict, model, urls, mails)
    checker.check_dead_letters(verdict, bootstrap, history)
    checker.check_stores(verdict, bootstrap, cd, nt, history, mails)
    if any(e["kind"] == "digest-unsure" for e in history):
        verdict.fail("a digest run never completed: its digests cannot be checked")
    verdict.figures["events rejected by the rules (model)"] = model.rejected
    return verdict


def report(run: Run, verdict: checker.Verdict, history: list[dict[str, Any]], instances: dict[str, Instance],
           nemesis: Nemesis, sampler: Sampler) -> None:
    events = [e for e in history if e["kind"] == "event"]
    ops = Counter(f"{e['op']} {e['outcome']}" for e in history if e["kind"] == "op")
    run.say("")
    run.say(f"operations: {len(events)} platform records ({sum(1 for e in events if e.get('dup'))} duplicates, "
            f"{sum(1 for e in events if e.get('poison'))} poison), "
            f"{sum(ops.values())} API commands, {sum(1 for e in history if e['kind'] == 'digest')} digest runs")
    run.say("  commands: " + ", ".join(f"{k} {v}" for k, v in sorted(ops.items())))
    run.say("faults injected: " + (", ".join(f"{k} {v}" for k, v in sorted(nemesis.counts.items())) or "none"))
    run.say("  processes: " + ", ".join(f"{n} {i.starts} starts/{i.kills} kills/{i.stops} pauses"
                                         for n, i in instances.items()))
    run.say("figures:")
    for key, value in verdict.figures.items():
        run.say(f"  {key}: {value}")
    run.say("memory and open file descriptors:")
    for line in sampler.table():
        run.say(line)
    run.say("")
    run.say("VERDICT: " + ("PASS" if verdict.ok else "FAIL"))
    for failure in verdict.failures:
        run.say(f"  - {failure}")
    for finding in verdict.findings:
        run.say(f"finding: {finding}")
    outcome = {"ok": verdict.ok, "failures": verdict.failures, "findings": verdict.findings,
               "figures": verdict.figures}
    (run.folder / "verdict.json").write_text(json.dumps(outcome, indent=2, default=str))

