"""`make demo`'s firm: deterministic, in contract, every state of the Clients page, and
idempotent (the same CloudEvent ids every run, so a second run changes nothing)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from contracts.envelope import CloudEvent
from contracts.events import EVENT_TYPES
from deploy.demo import FIRM, STATES, plan, records
from tests.client_directory.support import Directory, accountant, admin


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
