"""deploy/checks/observability.py: the repository's rules and dashboards pass; a rule naming a
metric the services do not expose, malformed PromQL, a runbook link to no section, or a stale
Kubernetes rendering each fail it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from deploy.checks.common import Context
from deploy.checks.observability import (
    K8S_FILE,
    OBSERVABILITY_DIR,
    RULES_FILE,
    RUNBOOK,
    PromQL,
    PromQLError,
    check_observability,
    exposed_metrics,
    runbook_anchors,
)

ROOT = Path(__file__).resolve().parent.parent


def problems(root: Path) -> list[str]:
    ctx = Context(root)
    check_observability(ctx)
    return ctx.result.problems


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    for rel in (OBSERVABILITY_DIR,):
        shutil.copytree(ROOT / rel, tmp_path / rel)
    for rel in (RUNBOOK, K8S_FILE):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    return tmp_path


def add_rule(root: Path, rule: dict[str, object]) -> None:
    path = root / RULES_FILE
    doc = yaml.safe_load(path.read_text())
    doc["groups"][0]["rules"].append(rule)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def alert(expr: str, runbook: str = "docs/RUNBOOK.md#alert-portalleadermissing") -> dict[str, object]:
    return {"alert": "PortalSomething", "expr": expr, "for": "5m",
            "annotations": {"summary": "something", "runbook_url": runbook}}


def test_the_repositorys_rules_dashboards_and_configmaps_pass() -> None:
    assert problems(ROOT) == []


def test_a_rule_naming_a_metric_that_does_not_exist_fails(copy: Path) -> None:
    add_rule(copy, alert("rate(portal_emails_sent_total[5m]) > 0"))
    found = [p for p in problems(copy) if "portal_emails_sent_total" in p]
    assert found == [f"{RULES_FILE}: group partner-portal-consumers: PortalSomething: metric "
                     "portal_emails_sent_total is not exposed by the services' /metrics"]


def test_malformed_promql_and_a_runbook_link_to_no_section_fail(copy: Path) -> None:
    add_rule(copy, alert("sum by (service (portal_leader) < 1"))
    add_rule(copy, alert("portal_leader < 1", runbook="docs/RUNBOOK.md#alert-nothing-here"))
    found = problems(copy)
    assert any("PortalSomething: PromQL:" in p for p in found), found
    assert any("has no section with that anchor" in p for p in found), found


def test_a_dashboard_naming_an_unknown_metric_and_a_stale_configmap_fail(copy: Path) -> None:
    path = copy / OBSERVABILITY_DIR / "dashboard-notifier.json"
    path.write_text(path.read_text().replace("portal_emails_total", "portal_mails_total"))
    found = problems(copy)
    assert any("dashboard-notifier.json" in p and "portal_mails_total" in p for p in found), found
    assert any(p.startswith(f"{K8S_FILE}: differs") for p in found), found


def test_promql_names_and_errors() -> None:
    expr = ('histogram_quantile(0.95, sum by (le) (rate(portal_http_request_seconds_bucket'
            '{service="notifier", route!~"/healthz"}[$__rate_interval]))) '
            '/ on (service) group_left max(portal_leader offset 5m) > bool 0.5 unless absent({__name__="up"})')
    assert PromQL(expr).metric_names() == {"portal_http_request_seconds_bucket", "portal_leader", "up"}
    for bad in ("rate(portal_leader[5m]", "portal_leader{service=notifier}", "nosuchfunction(portal_leader)",
                "portal_leader[5]", "sum by (service) portal_leader"):
        with pytest.raises(PromQLError):
            PromQL(bad).metric_names()


def test_anchors_are_those_a_markdown_renderer_gives() -> None:
    anchors = runbook_anchors(ROOT / RUNBOOK)
    assert {"alert-portalleadermissing", "several-instances-who-leads",
            "a-digest-did-not-go-out--an-email-is-missing"} <= anchors


def test_what_the_check_knows_is_what_metrics_shows() -> None:
    """A running service's /metrics: every portal_* sample it shows is a name the check knows."""
    import asyncio
    from types import SimpleNamespace

    import httpx
    from fastapi import FastAPI
    from prometheus_client.parser import text_string_to_metric_families

    from events.metrics import OUTBOX_PENDING
    from events.runtime import add_operational_routes

    OUTBOX_PENDING.labels("tests").set(0)
    api = FastAPI()
    add_operational_routes(api, SimpleNamespace(service="tests"))  # type: ignore[arg-type]

    async def scrape() -> str:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://t") as client:
            await client.get("/healthz")  # one request: the latency histogram has samples
            return (await client.get("/metrics")).text

    names = {sample.name for family in text_string_to_metric_families(asyncio.run(scrape()))
             for sample in family.samples if sample.name.startswith("portal_")}
    assert {"portal_http_request_seconds_bucket", "portal_outbox_pending_messages"} <= names
    assert names <= exposed_metrics()
