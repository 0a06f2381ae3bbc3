"""`make demo`: seeds a realistic firm through the real broker, so that `make run` then
`make demo` shows a living Clients page at http://127.0.0.1:8000/portal.

The firm: 2 admins, 6 accountants and 300 clients in every state (invitations waiting,
onboarding, failed verification, connected, a few disconnected), with accented names, figures
on each and assignments (with a little churn). Everything goes out as CloudEvents on the
topics of docs/CONTRACT.md, the way the platform would publish it.

Deterministic (one seeded random generator) and idempotent: an event's id is derived from its
content and its place in the script, so running the demo again publishes the same ids, which
the services deduplicate: nothing is duplicated.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from contracts.envelope import make_event
from contracts.events import EVENT_TYPES
from events.config import ConfigError, KafkaSettings

FIRM = "firm-dubois-associes"
SEED = 20260105
SOURCE = "/demo/platform"
NAMESPACE = uuid.UUID("6f1c1d0e-5b0a-4d8e-9a57-3f7f1a0c2b11")
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
DOMAIN = "dubois-associes.example"

ADMINS = [
    ("camille", "Camille Dubois", "fr"),
    ("james", "James Whitfield", "en"),
]
ACCOUNTANTS = [
    ("elodie", "Élodie Martin", "fr"),
    ("soren", "Søren Østergaard", "da"),
    ("chloe", "Chloé Lefèvre", "fr"),
    ("mads", "Mads Nielsen", "da"),
    ("amelie", "Amélie Rousseau", "fr"),
    ("tom", "Tom Becker", "en"),
]
EMAIL_NAMES = {"camille": "camille.dubois", "james": "james.whitfield", "elodie": "elodie.martin",
               "soren": "soren.ostergaard", "chloe": "chloe.lefevre", "mads": "mads.nielsen",
               "amelie": "amelie.rousseau", "tom": "tom.becker"}

# Names a demo should show: the search (`societe`), accents and the natural sort
# (Édgar < Élodie < Fabrice; Ærø and Øresund among the Danish names).
FEATURED = [
    "Société Générale", "Élodie Café", "Edgar Eriksen ApS", "Fabrice Fournier SARL", "Ærø Bryggeri",
    "Øresund Logistik A/S", "Ångström Labs AB", "Château Lafleur", "Crème & Cacao", "Brasserie Zoé",
    "Boulangerie Ménard", "Café de l'Époque", "Pâtisserie Hélène", "Garage Müller GmbH",
    "Librairie Gaëlle", "Hôtel Bellevue", "Épicerie Fine Noël", "Maison Dupré", "Fromagerie Béatrice",
    "Cabinet Médical Saint-Éloi", "Nørrebro Cykler", "Zoë Design Studio", "Škola Tanca s.r.o.",
]
KINDS = [
    "Atelier", "Boulangerie", "Brasserie", "Cabinet", "Café", "Garage", "Librairie", "Maison", "Pâtisserie",
    "Pharmacie", "Studio", "Transports", "Fromagerie", "Épicerie", "Hôtel", "Menuiserie", "Imprimerie",
    "Fleuriste", "Agence", "Bistrot", "Clinique Vétérinaire", "Domaine", "Éditions", "Laboratoire",
    "Tapisserie", "Cave", "Salon", "Bureau d'Études", "Conseil", "Rénovation",
]
NAMES = [
    "Dubois", "Lefèvre", "Mercier", "Gérard", "Renée", "Thérèse", "Noël", "Béranger", "Cécile",
    "Dupré", "Fabre", "Gauthier", "Hélène", "Joséphine", "Lambert", "Léon", "Marchand", "Ménard",
    "Océane", "Perrin", "Rivière", "Rousseau", "Séverine", "Valérie", "Zoé", "Aurélie", "Bérénice",
    "Clément", "Désirée", "Émile", "François", "Inès", "Jérôme", "Loïc", "Maëlle", "Raphaël",
    "Ørsted", "Søndergaard", "Ærlig", "Åberg", "Müller", "Schäfer", "Núñez", "Ibáñez", "Čapek",
]
SUFFIXES = ["", "", "", " SARL", " SAS", " & Fils", " et Associés", " ApS", " GmbH", " SA"]
FAIL_REASONS = ["document_unreadable", "identity_mismatch", "company_register_not_found",
                "beneficial_owner_missing"]
CURRENCIES = ["EUR"] * 14 + ["DKK"] * 3 + ["SEK", "GBP", "USD"]

# How many clients end in each state (300 in all).
STATES = {"invited": 14, "onboarding": 18, "verification_failed": 8, "disconnected": 6, "connected": 254}


@dataclass(frozen=True)
class Planned:
    type: str
    subject: str
    data: dict[str, Any]


def user(key: str) -> str:
    return f"{FIRM}-{key}"


def client_names(rng: random.Random, count: int) -> list[str]:
    names = list(FEATURED)
    seen = {n.casefold() for n in names}
    while len(names) < count:
        name = f"{rng.choice(KINDS)} {rng.choice(NAMES)}{rng.choice(SUFFIXES)}"
        if name.casefold() not in seen:
            seen.add(name.casefold())
            names.append(name)
    return names[:count]


def figures(rng: random.Random, client_id: str, connected: bool) -> dict[str, Any]:
    missing = 0 if rng.random() < 0.35 else int(rng.triangular(1, 90, 4))
    ready = int(rng.triangular(0, 160, 12)) if connected else rng.randint(0, 3)
    amount = Decimal(rng.randint(0, 25_000_000 if connected else 200_000)) / 100
    return {
        "client_id": client_id,
        "wallet_balance": {"amount": f"{amount:.2f}", "currency": rng.choice(CURRENCIES)},
        "missing_receipts": missing if connected else min(missing, 5),
        "ready_to_export": ready,
        "as_of": (START + timedelta(days=2)).isoformat(),
    }


def plan(seed: int = SEED) -> list[Planned]:
    """Every event of the demo firm, in publishing order (per client, in lifecycle order)."""
    rng = random.Random(seed)
    events: list[Planned] = []
    for key, name, locale in ADMINS:
        events.append(Planned("partner.member.added.v1", user(key), {
            "user_id": user(key), "email": f"{EMAIL_NAMES[key]}@{DOMAIN}", "name": name, "role": "admin",
            "locale": locale}))
    for key, name, locale in ACCOUNTANTS:
        events.append(Planned("partner.member.added.v1", user(key), {
            "user_id": user(key), "email": f"{EMAIL_NAMES[key]}@{DOMAIN}", "name": name, "role": "accountant",
            "locale": locale}))

    total = sum(STATES.values())
    names = client_names(rng, total)
    # The featured names stay connected (they are what the demo searches for); the other
    # states are spread over the generated names, then the client numbers are shuffled.
    rest_states = [s for s, n in STATES.items() for _ in range(n - (len(FEATURED) if s == "connected" else 0))]
    rng.shuffle(rest_states)
    assignment = [(n, "connected") for n in names[:len(FEATURED)]]
    assignment += list(zip(names[len(FEATURED):], rest_states, strict=True))
    rng.shuffle(assignment)

    accountants = [user(key) for key, _, _ in ACCOUNTANTS]
    admins = [user(key) for key, _, _ in ADMINS]
    for number, (name, state) in enumerate(assignment, start=1):
        client_id = f"{FIRM}-client-{number:03d}"
        if state == "invited":
            events.append(Planned("client.partner_invited.v1", client_id,
                                  {"client_id": client_id, "client_name": name}))
            continue
        events.append(Planned("client.onboarding_started.v1", client_id, {
            "client_id": client_id, "client_name": name, "invited_by": rng.choice(admins)}))
        # Round-robin first, so every accountant has onboarding and connected clients.
        team = [accountants[number % len(accountants)]]
        if state == "connected" and rng.random() < 0.25:
            team.append(rng.choice([a for a in accountants if a not in team]))
        if state == "connected" and rng.random() < 0.08:
            team.append(rng.choice(admins))
        if state == "connected" and rng.random() < 0.04:
            team = []  # a few connected clients nobody looks after yet
        for member in team:
            events.append(Planned("client.accountant_assigned.v1", client_id,
                                  {"client_id": client_id, "user_id": member}))
        if state == "verification_failed":
            events.append(Planned("client.verification_failed.v1", client_id,
                                  {"client_id": client_id, "reason": rng.choice(FAIL_REASONS)}))
        elif state in ("connected", "disconnected"):
            events.append(Planned("client.verification_completed.v1", client_id, {"client_id": client_id}))
            if team and rng.random() < 0.06:
                # Churn: the client changes hands once.
                leaving = team[0]
                joining = rng.choice([a for a in accountants if a not in team])
                events.append(Planned("client.accountant_unassigned.v1", client_id,
                                      {"client_id": client_id, "user_id": leaving}))
                events.append(Planned("client.accountant_assigned.v1", client_id,
                                      {"client_id": client_id, "user_id": joining}))
            if state == "disconnected":
                events.append(Planned("client.disconnected.v1", client_id, {"client_id": client_id}))
        events.append(Planned("client.metrics_updated.v1", client_id,
                              figures(rng, client_id, state in ("connected", "disconnected"))))

    # A few email preferences, so "View details" shows some set (the notifier schedules them too).
    connected = [p.subject for p in events if p.type == "client.verification_completed.v1"]
    for client_id in rng.sample(connected, 6):
        events.append(Planned("notification.preference_set.v1", client_id, {
            "client_id": client_id, "user_id": admins[0], "email_enabled": True,
            "frequency": rng.choice(["daily", "weekly", "monthly"])}))
    return events


def envelope(planned: Planned, ordinal: int, index: int) -> tuple[str, bytes, bytes]:
    """(topic, key, value) of one event; its id is a name-based UUID of what it says and of its
    place in the subject's history (the same assignment twice is two events)."""
    kind = EVENT_TYPES[planned.type]
    data = kind.data.model_validate(planned.data).model_dump(mode="json")  # in contract, or fail here
    content = json.dumps([FIRM, planned.subject, ordinal, planned.type, planned.data], sort_keys=True)
    event = make_event(
        id=str(uuid.uuid5(NAMESPACE, content)), source=SOURCE, type=planned.type, subject=planned.subject,
        partnerid=FIRM, data=data, time=START + timedelta(seconds=index),
    )
    return kind.topic.value, planned.subject.encode(), event.to_json_bytes()


def records(events: list[Planned]) -> list[tuple[str, bytes, bytes]]:
    per_subject: dict[str, int] = {}
    out = []
    for index, planned in enumerate(events):
        ordinal = per_subject.get(planned.subject, 0)
        per_subject[planned.subject] = ordinal + 1
        out.append(envelope(planned, ordinal, index))
    return out


def summary(events: list[Planned]) -> str:
    counts: dict[str, int] = {}
    for p in events:
        counts[p.type] = counts.get(p.type, 0) + 1
    return ", ".join(f"{n} {t}" for t, n in sorted(counts.items()))


# What the notifier consumes of the demo, and how long the demo waits for it to be applied.
NOTIFIER_TOPICS = ("platform.partner-members", "platform.partner-clients", "platform.client-metrics",
                   "portal.notifications")
CONSUMED_TIMEOUT = 60.0
SECRET_FILE = Path(__file__).resolve().parent.parent / "var" / "portal-jwt-secret"  # deploy/local.py's


def wait_until_consumed(kafka: KafkaSettings, group: str, topics: tuple[str, ...], timeout: float) -> bool:
    """Whether the consumer group committed every partition of the topics up to its end within
    `timeout`: the notifier commits a batch after applying it to its store, so what the demo
    published is then known to it."""
    kwargs = kafka.kafka_python_kwargs()
    consumer = KafkaConsumer(**kwargs)  # type: ignore[arg-type]
    admin = KafkaAdminClient(**kwargs)  # type: ignore[arg-type]
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        ends = {tp: end for tp, end in consumer.end_offsets(partitions).items() if end > 0}
        deadline = time.monotonic() + timeout
        while True:
            committed = admin.list_group_offsets({group: list(ends)}).get(group, {})
            if all(tp in committed and committed[tp].offset >= end for tp, end in ends.items()):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
    finally:
        admin.close()
        consumer.close()


def run_first_digests(env: dict[str, str]) -> int:
    """`python -m services.notifier digests run` as of now: the demo's preferences were set in
    January, so the one digest they missed is due at once. The running notifier's scheduler
    would find it within a minute; this makes it due now, and the notifier (holding the sender
    lock) sends it within a second or two."""
    env = dict(env)
    if "PORTAL_JWT_SECRET" not in env and "NOTIFIER_UNSUBSCRIBE_SECRET" not in env:
        if SECRET_FILE.is_file():  # the same secret `make run` gives the notifier
            env["PORTAL_JWT_SECRET"] = SECRET_FILE.read_text().strip()
        else:
            env["PORTAL_DEV_MODE"] = "true"
    done = subprocess.run([sys.executable, "-m", "services.notifier", "digests", "run", "--wait", "1"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    for line in (done.stdout + done.stderr).splitlines():
        if line.strip():
            print(f"demo: notifier: {line}")
    return done.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print what would be published, publish nothing")
    parser.add_argument("--no-digests", action="store_true",
                        help="do not make the first digest due right away (the notifier finds it within a minute)")
    args = parser.parse_args(argv)
    events = plan()
    planned = records(events)
    if args.dry_run:
        for topic, key, value in planned:
            print(topic, key.decode(), value.decode())
        print(f"{len(planned)} events: {summary(events)}", file=sys.stderr)
        return 0
    try:
        kafka = KafkaSettings.from_env(os.environ)
    except ConfigError as error:
        print(f"demo: configuration error: {error}", file=sys.stderr)
        return 2
    try:
        producer = KafkaProducer(acks="all", linger_ms=20, **kafka.kafka_python_kwargs())
    except Exception as error:
        print(f"demo: cannot reach the broker at {kafka.bootstrap_servers} ({error}); is `make run` up?",
              file=sys.stderr)
        return 1
    try:
        futures = [producer.send(topic, key=key, value=value) for topic, key, value in planned]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=30)  # raises if the broker refused a record
    finally:
        producer.close()
    print(f"demo: published {len(planned)} events for firm {FIRM} to {kafka.bootstrap_servers}: "
          f"2 admins, 6 accountants, {sum(STATES.values())} clients "
          f"({', '.join(f'{n} {s}' for s, n in STATES.items())}).")
    if not args.no_digests:
        group = os.environ.get("NOTIFIER_GROUP_ID", "notifier")
        if wait_until_consumed(kafka, group, NOTIFIER_TOPICS, CONSUMED_TIMEOUT):
            run_first_digests(dict(os.environ))
        else:
            print(f"demo: the notifier (group {group}) has not read everything after {CONSUMED_TIMEOUT:.0f}s; "
                  "its scheduler makes the first digest due within a minute of reading it")
    port = os.environ.get("CLIENT_DIRECTORY_HTTP_PORT", "8000")
    print(f"demo: open http://127.0.0.1:{port}/portal and pick a member of {FIRM}; "
          f"mail caught by the SMTP sink is at http://127.0.0.1:{port}/dev/mail")
    return 0


if __name__ == "__main__":
    sys.exit(main())
