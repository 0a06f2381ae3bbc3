"""Create every Kafka topic of the partner portal, idempotently.

Run as ``python -m deploy.provision_topics`` (the Kubernetes Job and the compose job
``kafka-topics`` do exactly that, with the application image). Topics that already exist
are left alone and reported; a topic with fewer partitions or replicas than asked for is
reported as a warning, never changed (adding partitions moves keys to other partitions
and would break the per-subject ordering the consumers rely on).

Settings come from flags, else from the environment, else from the defaults below:

| flag | environment | default |
|---|---|---|
| ``--bootstrap-servers`` | ``KAFKA_BOOTSTRAP_SERVERS`` | ``127.0.0.1:9092`` |
| ``--partitions`` | ``KAFKA_TOPIC_PARTITIONS`` | 12 |
| ``--replication-factor`` | ``KAFKA_TOPIC_REPLICATION_FACTOR`` | 3 |
| ``--min-insync-replicas`` | ``KAFKA_TOPIC_MIN_INSYNC_REPLICAS`` | min(2, replication factor) |
| ``--config KEY=VALUE`` (repeatable) | ``KAFKA_TOPIC_CONFIGS`` (comma separated) | none |
| ``--wait-seconds`` | ``KAFKA_PROVISION_WAIT_SECONDS`` | 120 |

``--min-insync-replicas none`` (or ``0``) sends no ``min.insync.replicas`` config at all,
for brokers that refuse topic configs; the broker default then applies. Connection
security uses the services' variables: ``KAFKA_SECURITY_PROTOCOL``,
``KAFKA_SASL_MECHANISM``, ``KAFKA_SASL_USERNAME``, ``KAFKA_SASL_PASSWORD``,
``KAFKA_SSL_CAFILE``. Exit status: 0 when every topic exists afterwards, 1 when a topic
could not be created, 2 for bad settings or an unreachable cluster.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Topics the services consume (docs/ARCHITECTURE.md); each one gets a ``<topic>.dlq``.
CONSUMED_TOPICS: tuple[str, ...] = (
    "platform.partner-members",
    "platform.partner-clients",
    "platform.client-metrics",
    "portal.notifications",
    "portal.client-directory",
    "portal.notification-deliveries",  # the client directory's reminder history
)
#: Topics only produced by the services (read by on-call and other teams).
PRODUCED_ONLY_TOPICS: tuple[str, ...] = ()
DLQ_SUFFIX = ".dlq"

CLIENT_ID = "partner-portal-provision-topics"
DEFAULT_PARTITIONS = 12
DEFAULT_REPLICATION_FACTOR = 3
DEFAULT_WAIT_SECONDS = 120
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
#: The variables of the topic job's own (deploy.check knows them from here); the connection
#: ones are the services' (events.config.KafkaSettings).
VARIABLES: tuple[str, ...] = (
    "KAFKA_TOPIC_PARTITIONS",
    "KAFKA_TOPIC_REPLICATION_FACTOR",
    "KAFKA_TOPIC_MIN_INSYNC_REPLICAS",
    "KAFKA_TOPIC_CONFIGS",
    "KAFKA_PROVISION_WAIT_SECONDS",
)

# Kafka protocol error codes the provisioning reads from CreateTopics responses.
_NO_ERROR = 0
_TOPIC_ALREADY_EXISTS = 36


class SettingsError(Exception):
    """A bad flag or environment value; the message is one line naming it."""


def all_topics() -> list[str]:
    """Every topic to provision: consumed, produced-only, then one DLQ per consumed topic."""
    return [
        *CONSUMED_TOPICS,
        *PRODUCED_ONLY_TOPICS,
        *(f"{topic}{DLQ_SUFFIX}" for topic in CONSUMED_TOPICS),
    ]


@dataclass(frozen=True)
class TopicPlan:
    """What every topic should look like."""

    partitions: int = DEFAULT_PARTITIONS
    replication_factor: int = DEFAULT_REPLICATION_FACTOR
    min_insync_replicas: int | None = 2
    configs: Mapping[str, str] = field(default_factory=dict)

    def topic_configs(self) -> dict[str, str]:
        configs = dict(self.configs)
        if self.min_insync_replicas is not None:
            configs["min.insync.replicas"] = str(self.min_insync_replicas)
        return configs


@dataclass
class Report:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"created {name}" for name in self.created]
        out += [f"exists  {name}" for name in self.existing]
        out += [f"WARNING {text}" for text in self.warnings]
        out += [f"ERROR   {text}" for text in self.errors]
        return out


def _positive_int(name: str, raw: str, lo: int = 1, hi: int = 10_000) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name}={value} is out of range ({lo}-{hi})")
    return value


def _parse_configs(name: str, items: Sequence[str]) -> dict[str, str]:
    configs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"{name}: {item!r} is not KEY=VALUE")
        configs[key.strip()] = value.strip()
    return configs


def connection_kwargs(bootstrap_servers: str, env: Mapping[str, str]) -> dict[str, Any]:
    """kafka-python connection settings from the services' environment variables."""
    servers = [s.strip() for s in bootstrap_servers.split(",") if s.strip()]
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            raise SettingsError(
                f"KAFKA_BOOTSTRAP_SERVERS={bootstrap_servers!r} is not a list of host:port"
            )
    if not servers:
        raise SettingsError("KAFKA_BOOTSTRAP_SERVERS is empty")
    protocol = env.get("KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT"
    if protocol not in SECURITY_PROTOCOLS:
        raise SettingsError(
            f"KAFKA_SECURITY_PROTOCOL={protocol!r} is not one of {', '.join(SECURITY_PROTOCOLS)}"
        )
    kwargs: dict[str, Any] = {"bootstrap_servers": servers, "security_protocol": protocol}
    if protocol.startswith("SASL"):
        mechanism = env.get("KAFKA_SASL_MECHANISM") or "PLAIN"
        if mechanism not in SASL_MECHANISMS:
            raise SettingsError(
                f"KAFKA_SASL_MECHANISM={mechanism!r} is not one of {', '.join(SASL_MECHANISMS)}"
            )
        for name in ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"):
            if not env.get(name):
                raise SettingsError(f"{name} is not set (KAFKA_SECURITY_PROTOCOL={protocol})")
        kwargs.update(
            sasl_mechanism=mechanism,
            sasl_plain_username=env["KAFKA_SASL_USERNAME"],
            sasl_plain_password=env["KAFKA_SASL_PASSWORD"],
        )
    cafile = env.get("KAFKA_SSL_CAFILE")
    if cafile:
        if not os.path.isfile(cafile):
            raise SettingsError(f"KAFKA_SSL_CAFILE={cafile!r} is not a readable file")
        kwargs["ssl_cafile"] = cafile
    return kwargs


def build_plan(args: argparse.Namespace, env: Mapping[str, str]) -> TopicPlan:
    """The plan from flags, falling back to the environment, then to the defaults."""
    raw_partitions = args.partitions or env.get("KAFKA_TOPIC_PARTITIONS") or ""
    partitions = (
        _positive_int("KAFKA_TOPIC_PARTITIONS", raw_partitions)
        if raw_partitions
        else DEFAULT_PARTITIONS
    )
    raw_rf = args.replication_factor or env.get("KAFKA_TOPIC_REPLICATION_FACTOR") or ""
    replication_factor = (
        _positive_int("KAFKA_TOPIC_REPLICATION_FACTOR", raw_rf, hi=32)
        if raw_rf
        else DEFAULT_REPLICATION_FACTOR
    )
    raw_isr = args.min_insync_replicas
    if raw_isr is None:
        raw_isr = env.get("KAFKA_TOPIC_MIN_INSYNC_REPLICAS") or ""
    min_isr: int | None
    if raw_isr == "":
        min_isr = min(2, replication_factor)
    elif raw_isr.strip().lower() in ("none", "0", "off"):
        min_isr = None
    else:
        min_isr = _positive_int("KAFKA_TOPIC_MIN_INSYNC_REPLICAS", raw_isr, hi=32)
        if min_isr > replication_factor:
            raise SettingsError(
                f"KAFKA_TOPIC_MIN_INSYNC_REPLICAS={min_isr} is more than the replication "
                f"factor {replication_factor}: every acks=all write would fail"
            )
    env_configs = [c for c in (env.get("KAFKA_TOPIC_CONFIGS") or "").split(",") if c.strip()]
    configs = _parse_configs("KAFKA_TOPIC_CONFIGS", env_configs)
    configs.update(_parse_configs("--config", args.config or []))
    if "min.insync.replicas" in configs:
        raise SettingsError("set min.insync.replicas with --min-insync-replicas, not --config")
    return TopicPlan(partitions, replication_factor, min_isr, configs)


def provision(admin: Any, topics: Sequence[str], plan: TopicPlan) -> Report:
    """Create the missing topics with ``admin`` (a kafka-python KafkaAdminClient)."""
    report = Report()
    request = {
        name: {
            "num_partitions": plan.partitions,
            "replication_factor": plan.replication_factor,
            "configs": plan.topic_configs(),
        }
        for name in topics
    }
    response = admin.create_topics(request, raise_errors=False)
    for result in response["topics"]:
        name, code = result["name"], result["error_code"]
        if code == _NO_ERROR:
            report.created.append(name)
        elif code == _TOPIC_ALREADY_EXISTS:
            report.existing.append(name)
        else:
            message = result.get("error_message") or f"error code {code}"
            report.errors.append(f"{name}: {message}")
    if report.created:
        try:
            admin.wait_for_topics(report.created, timeout_ms=30_000)
        except Exception as error:  # the topics exist; leaders may just be slow
            report.warnings.append(f"new topics not all ready yet: {error}")
    described = admin.describe_topics(list(topics))
    by_name = {t.get("name"): t for t in described}
    for name in topics:
        topic = by_name.get(name)
        if topic is None or topic.get("error_code", 0) != _NO_ERROR:
            if not any(e.startswith(f"{name}:") for e in report.errors):
                report.errors.append(f"{name}: not visible in the cluster metadata")
            continue
        partitions = topic.get("partitions") or []
        if len(partitions) < plan.partitions:
            report.warnings.append(
                f"{name} has {len(partitions)} partitions, {plan.partitions} wanted; left as is "
                "(adding partitions remaps keys; grow it by hand in a maintenance window)"
            )
        replicas = min((len(p.get("replica_nodes") or []) for p in partitions), default=0)
        if partitions and replicas < plan.replication_factor:
            report.warnings.append(
                f"{name} has replication factor {replicas}, {plan.replication_factor} wanted"
            )
    return report


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.provision_topics",
        description="Create the partner portal's Kafka topics (idempotent).",
    )
    parser.add_argument("--bootstrap-servers", help="host:port,... (KAFKA_BOOTSTRAP_SERVERS)")
    parser.add_argument("--partitions", help=f"partitions per topic (default {DEFAULT_PARTITIONS})")
    parser.add_argument(
        "--replication-factor",
        help=f"replicas per partition (default {DEFAULT_REPLICATION_FACTOR})",
    )
    parser.add_argument(
        "--min-insync-replicas",
        help="min.insync.replicas per topic; 'none' sends no topic config (default min(2, RF))",
    )
    parser.add_argument(
        "--config", action="append", metavar="KEY=VALUE", help="extra topic config (repeatable)"
    )
    parser.add_argument(
        "--wait-seconds", help=f"how long to wait for the cluster (default {DEFAULT_WAIT_SECONDS})"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    args = parse_args(argv)
    topics = all_topics()
    try:
        plan = build_plan(args, env)
        servers = args.bootstrap_servers or env.get("KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:9092"
        kwargs = connection_kwargs(servers, env)
        raw_wait = args.wait_seconds or env.get("KAFKA_PROVISION_WAIT_SECONDS") or ""
        wait = (
            _positive_int("KAFKA_PROVISION_WAIT_SECONDS", raw_wait, hi=3600)
            if raw_wait
            else DEFAULT_WAIT_SECONDS
        )
    except SettingsError as error:
        print(f"provision-topics: {error}", file=sys.stderr)
        return 2
    summary = (
        f"{len(topics)} topics, {plan.partitions} partitions, replication factor "
        f"{plan.replication_factor}, configs {plan.topic_configs() or 'none'}"
    )
    if args.dry_run:
        print(f"provision-topics (dry run): {summary}")
        for name in topics:
            print(f"plan    {name}")
        return 0

    from kafka.admin import KafkaAdminClient  # imported late: --help and --dry-run stay fast

    # The client logs every failed attempt at error level; this tool reports the outcome in one
    # line of its own, whatever logging the process that runs it has configured.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    try:
        admin = KafkaAdminClient(
            client_id=CLIENT_ID,
            bootstrap_timeout_ms=wait * 1000,
            request_timeout_ms=30_000,
            **kwargs,
        )
    except Exception as error:
        print(f"provision-topics: cannot reach Kafka at {servers}: {error}", file=sys.stderr)
        return 2
    try:
        report = provision(admin, topics, plan)
    except Exception as error:
        print(f"provision-topics: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        admin.close()
    for line in report.lines():
        print(line)
    print(
        f"provision-topics: {summary}: {len(report.created)} created, "
        f"{len(report.existing)} existed, {len(report.warnings)} warnings, "
        f"{len(report.errors)} errors"
    )
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
