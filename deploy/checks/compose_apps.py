"""The application services of ``deploy/compose.yaml`` (environment, replicas, published
ports, health checks on ``/healthz`` / ``/readyz`` on the service's HTTP port, the topic
job waited for) and its 3-broker KRaft cluster."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from deploy.checks.common import (
    COMPOSE_FILE,
    HEALTH_PATHS,
    MIN_SERVICE_REPLICAS,
    SERVICE_PORT_ENV,
    Container,
    Context,
    entry_module,
    hosts_of,
)
from deploy.checks.variables import DB_ENV, check_app_env, http_port

MIN_BROKERS = 3
_URL = re.compile(r"https?://(?P<host>[^/:\s\"']+)(?::(?P<port>\d+))?(?P<path>/[^\s\"']*)?")


def check_compose_apps(
    ctx: Context, apps: list[tuple[dict[str, Any], Container]], services: Mapping[str, Any], one_shot: set[str]
) -> None:
    modules = [container.module for _, container in apps]
    for module in SERVICE_PORT_ENV:
        if module not in modules:
            ctx.problem(COMPOSE_FILE, f"no service runs python -m {module}")
    for spec, container in apps:
        check_app_env(ctx, container, secured_kafka_expected=False)
        check_hosts(ctx, container, services)
        check_replicas(ctx, container.where, spec)
        check_ports(ctx, container, spec)
        check_app_healthcheck(ctx, container, spec)
        raw_depends = spec.get("depends_on")
        depends: dict[str, Any] = raw_depends if isinstance(raw_depends, dict) else {}
        if not any(target in one_shot for target in depends):
            ctx.problem(container.where, "does not wait for the topic job "
                        "(depends_on condition service_completed_successfully)")


def check_hosts(ctx: Context, container: Container, services: Mapping[str, Any]) -> None:
    hostnames = {s.get("hostname") for s in services.values() if isinstance(s, dict)}
    for var in ("KAFKA_BOOTSTRAP_SERVERS", "SMTP_HOST", *DB_ENV):
        value = container.env.get(var)
        for host in hosts_of(value) if value else []:
            if host not in services and host not in hostnames:
                ctx.problem(container.where, f"{var} points at {host}, which is not a service")


def check_replicas(ctx: Context, where: str, spec: Mapping[str, Any]) -> None:
    replicas = (spec.get("deploy") or {}).get("replicas", 1)
    if not isinstance(replicas, int) or replicas < MIN_SERVICE_REPLICAS:
        ctx.problem(where, f"deploy.replicas is {replicas}, at least {MIN_SERVICE_REPLICAS} wanted")
    elif replicas > ctx.partitions:
        ctx.problem(where, f"{replicas} replicas > {ctx.partitions} partitions")


def check_ports(ctx: Context, container: Container, spec: Mapping[str, Any]) -> None:
    port = http_port(container)
    for entry in spec.get("ports") or []:
        target = entry.get("target") if isinstance(entry, dict) else str(entry).rsplit(":", 1)[-1].split("/")[0]
        if port is not None and str(target) != str(port):
            ctx.problem(container.where, f"publishes container port {target}, the service listens on {port}")


def check_app_healthcheck(ctx: Context, container: Container, spec: Mapping[str, Any]) -> None:
    where, port = container.where, http_port(container)
    test = (spec.get("healthcheck") or {}).get("test")
    words = [test] if isinstance(test, str) else [str(w) for w in test or []]
    urls = [m for w in words for m in _URL.finditer(w)]
    if not urls:
        ctx.problem(where, "healthcheck calls no /healthz or /readyz URL")
    for match in urls:
        if match.group("path") not in HEALTH_PATHS:
            ctx.problem(where, f"healthcheck path {match.group('path')} is not /healthz or /readyz")
        if port is not None and match.group("port") != str(port):
            ctx.problem(where, f"healthcheck port {match.group('port')} is not the HTTP port {port}")
    health_module = entry_module(words[1:] if words[:1] == ["CMD"] else words)
    if health_module:
        ctx.check_module(where + " healthcheck", health_module)


def check_compose_kafka(ctx: Context, brokers: list[tuple[str, dict[str, str | None]]]) -> None:
    if len(brokers) < MIN_BROKERS:
        ctx.problem(COMPOSE_FILE, f"{len(brokers)} Kafka brokers, {MIN_BROKERS} wanted")
        return
    cluster_ids = {env.get("CLUSTER_ID") for _, env in brokers}
    if len(cluster_ids) != 1 or None in cluster_ids:
        ctx.problem(COMPOSE_FILE, "the Kafka brokers do not share one CLUSTER_ID (KRaft)")
    node_ids = [env.get("KAFKA_NODE_ID") for _, env in brokers]
    if len(set(node_ids)) != len(node_ids) or None in node_ids:
        ctx.problem(COMPOSE_FILE, "the Kafka brokers need distinct KAFKA_NODE_IDs")
    for name, env in brokers:
        roles = env.get("KAFKA_PROCESS_ROLES") or ""
        if "broker" not in roles:
            ctx.problem(f"{COMPOSE_FILE}: service {name}", "KAFKA_PROCESS_ROLES lacks broker (KRaft mode)")
        voters = env.get("KAFKA_CONTROLLER_QUORUM_VOTERS") or ""
        if "controller" in roles and f"{env.get('KAFKA_NODE_ID')}@" not in voters:
            ctx.problem(f"{COMPOSE_FILE}: service {name}", "is a controller missing from "
                        "KAFKA_CONTROLLER_QUORUM_VOTERS")
    rf = ctx.compose_topic_settings.get("KAFKA_TOPIC_REPLICATION_FACTOR")
    if rf and rf.isdigit() and int(rf) > len(brokers):
        ctx.problem(COMPOSE_FILE, f"replication factor {rf} > {len(brokers)} brokers")
