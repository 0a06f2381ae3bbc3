"""`make demo`'s firm: deterministic, in contract, every state of the Clients page, and
idempotent (the same CloudEvent ids every run, so a second run changes nothing)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from contracts.envelope import CloudEvent
from contracts.events import EVENT_TYPES
from deploy.demo import DOMAIN, FIRM, STATES, plan, records
from deploy.demo import main as demo_main
from deploy.localbroker import LocalBroker, wait_for_port
from deploy.smtp_sink import SinkHandler
from tests.client_directory.support import Directory, accountant, admin
from tests.conftest import unique
from tests.faults.processes import ServiceProcess


def cloud_events() -> list[dict[str, Any]]:
    return [json.loads(value) for _, _, value in records(plan())]


def test_the_demo_is_the_same_every_run_with_one_id_per_event() -> None:
    first, second = records(plan()), records(plan())
    assert first == second
    ids = [json.loads(value)["id"] for _, _, value in first]
    assert len(ids) == len(set(ids))


def test_every_record_is_a_contract_cloud_event_on_its_topic_keyed_by_its_subject() -> None:
    for topic, key, value in records(plan()):
        event = CloudEvent.model_validate_json(value)
        kind = EVENT_TYPES[event.type]
        assert topic == kind.topic.value
        assert key.decode() == event.subject == event.data[kind.subject_field]
        assert event.partnerid == FIRM
        kind.data.model_validate(event.data)


def test_the_firm_has_two_admins_six_accountants_and_three_hundred_accented_clients() -> None:
    events = cloud_events()
    roles = Counter(e["data"]["role"] for e in events if e["type"] == "partner.member.added.v1")
    assert roles == {"admin": 2, "accountant": 6}
    names = {e["data"]["client_name"] for e in events if "client_name" in e["data"]}
    assert len(names) == 300 == sum(STATES.values())
    assert {"Société Générale", "Élodie Café"} <= names
    assert sum(1 for n in names if not n.isascii()) > 100
    metrics = {e["subject"] for e in events if e["type"] == "client.metrics_updated.v1"}
    clients = {e["subject"] for e in events if e["type"].startswith("client.") and "client_name" in e["data"]}
    assert clients - metrics == {e["subject"] for e in events if e["type"] == "client.partner_invited.v1"}


def test_the_demo_fills_every_tab_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    directory = Directory(str(tmp_path / "demo.db"))
    try:
        events = cloud_events()
        camille, elodie = admin(FIRM, f"{FIRM}-camille"), accountant(FIRM, f"{FIRM}-elodie")
        directory.send(events)
        counts = directory.counts(camille)
        assert counts["invitations"] == STATES["invited"]
        assert counts["onboarding"] == STATES["onboarding"] + STATES["verification_failed"]
        assert counts["all"] == STATES["connected"]
        assert counts["mine"] > 0
        statuses = Counter(i["status"] for i in directory.page(camille, "onboarding", limit=200)["items"])
        assert statuses == {"onboarding": STATES["onboarding"], "verification_failed": STATES["verification_failed"]}
        accountant_tabs = directory.counts(elodie)
        assert set(accountant_tabs) == {"onboarding", "mine"} and min(accountant_tabs.values()) > 0
        missing = directory.page(camille, "all", missing_receipts=True, limit=200)["items"]
        assert 0 < len(missing) < STATES["connected"]

        directory.send(events)  # `make demo` again: the same ids, deduplicated
        assert directory.counts(camille) == counts
        assert [e["type"] for e in events if directory.outcome(e)[0] != "applied"] == []  # none illegal
    finally:
        directory.app.close()


@pytest.mark.integration
def test_make_demo_has_the_notifier_send_the_first_digest_right_after_publishing(
        broker: LocalBroker, smtp: tuple[int, SinkHandler], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Camille's preferences were set in January: the digest she missed is due at once. The
    notifier's scheduler would find it within a minute; the demo makes it due itself."""
    port, sink = smtp
    env = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "NOTIFIER_DB": f"sqlite:///{tmp_path / 'notifier.db'}",
           "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_TLS": "none",
           "NOTIFIER_GROUP_ID": unique("notifier-demo")}
    notifier = ServiceProcess("services.notifier", env, tmp_path / "notifier.log")
    notifier.start()
    try:
        assert notifier.process is not None
        wait_for_port(notifier.port, timeout=60, process=notifier.process)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        assert demo_main([]) == 0
        said = capsys.readouterr().out
        # The demo runs the digests as of now; the running notifier, woken by the preferences,
        # may have made them already (then the demo's run makes none: it is idempotent).
        assert re.search(r"demo: notifier: digests as of \S+: (\d+) made", said), said
        # Sent by the running notifier (it holds the sender lock). Within seconds on its own; the
        # session's broker also holds every earlier test's firms, whose due digests go out too.
        camille = f"camille.dubois@{DOMAIN}"
        sink.wait_for(lambda mails: any(camille in str(m["To"]) and "Vos mises à jour clients" in str(m["Subject"])
                                        for m in mails), timeout=60)
    finally:
        notifier.stop()
