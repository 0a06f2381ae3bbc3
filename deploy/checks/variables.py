"""The environment of the application containers, the same rules for compose and Kubernetes.

Which variables exist is the services' business: the names come from each service's one
configuration reader (``services.<name>.config.Settings.variables()``) and from the topic
job's (``deploy.provision_topics.VARIABLES``). What production must set, and what must be a
secret, is this check's policy, written below over those names.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping

from deploy.checks.common import SERVICE_PORT_ENV, Container, Context
from deploy.provision_topics import VARIABLES as PROVISION_ENV

#: The configuration module of each service's entry point.
SETTINGS_MODULES: dict[str, str] = {module: f"{module}.config" for module in SERVICE_PORT_ENV}
#: Set on every application container of the production topology (the contract's list, the
#: producer settings production runs with, and the security protocol said out loud).
REQUIRED_APP_ENV: tuple[str, ...] = (
    "KAFKA_BOOTSTRAP_SERVERS", "CLIENT_DIRECTORY_DB", "NOTIFIER_DB", "CLIENT_DIRECTORY_HTTP_PORT",
    "NOTIFIER_HTTP_PORT", "SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_TLS",
    "MAIL_FROM", "PORTAL_JWT_SECRET", "PORTAL_BASE_URL",
    "KAFKA_SECURITY_PROTOCOL", "KAFKA_ENABLE_IDEMPOTENCE", "KAFKA_ACKS",
)
#: Per service, what a container needs beyond REQUIRED_APP_ENV: its bind address (the
#: services default to 127.0.0.1, unreachable from probes and peers) and, for the notifier,
#: the public URL its emails link to for one-click unsubscribe.
SERVICE_REQUIRED_ENV: dict[str, tuple[str, ...]] = {
    "services.client_directory": ("CLIENT_DIRECTORY_HTTP_HOST",),
    "services.notifier": ("NOTIFIER_HTTP_HOST", "NOTIFIER_PUBLIC_URL"),
}
#: Never a literal value in a manifest or a ConfigMap, never a default in compose.
SECRET_ENV = frozenset(("CLIENT_DIRECTORY_DB", "NOTIFIER_DB", "PORTAL_JWT_SECRET", "NOTIFIER_UNSUBSCRIBE_SECRET",
                        "SMTP_PASSWORD", "KAFKA_SASL_PASSWORD"))
SASL_ENV: tuple[str, ...] = ("KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD")
DB_ENV: tuple[str, ...] = ("CLIENT_DIRECTORY_DB", "NOTIFIER_DB")
KNOWN_ENV_PREFIXES: tuple[str, ...] = ("PYTHON",)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
SMTP_TLS_VALUES = ("none", "starttls", "tls")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


class VariablesUnknown(Exception):
    """A service's configuration cannot say which variables it reads."""


def service_variables(module: str) -> list[str]:
    """The variables ``python -m module`` reads, from its configuration reader."""
    name = SETTINGS_MODULES[module]
    try:
        settings = importlib.import_module(name).Settings
    except Exception as error:
        raise VariablesUnknown(f"{name} cannot be imported: {type(error).__name__}: {error}") from None
    if not callable(getattr(settings, "variables", None)):
        raise VariablesUnknown(f"{name}.Settings has no variables(): cannot tell which variables it reads")
    return [str(variable) for variable in settings.variables()]


def known_variables(ctx: Context) -> frozenset[str] | None:
    """Every variable a container of the application image may set; None when unknown
    (reported once, as the line naming the service's configuration)."""
    names: set[str] = set(PROVISION_ENV)
    for module in SETTINGS_MODULES:
        try:
            names.update(service_variables(module))
        except VariablesUnknown as error:
            ctx.problem("deploy/checks/variables.py", str(error))
            return None
    for name in sorted({*REQUIRED_APP_ENV, *SECRET_ENV, *SASL_ENV} - names):
        ctx.problem("deploy/checks/variables.py", f"policy names {name}, which no service reads")
    return frozenset(names)


def check_env_names(ctx: Context, where: str, names: Iterable[str]) -> None:
    if ctx.known_env is None:
        return
    for name in sorted(set(names)):
        if name not in ctx.known_env and not name.startswith(KNOWN_ENV_PREFIXES):
            ctx.problem(where, f"unknown environment variable {name}")


def http_port(container: Container) -> int | None:
    if container.module not in SERVICE_PORT_ENV:
        return None
    value = container.env.get(SERVICE_PORT_ENV[container.module])
    return int(value) if value and value.isdigit() else None


def check_app_env(ctx: Context, container: Container, secured_kafka_expected: bool) -> None:
    """The environment of a container running one of the services."""
    check_required(ctx, container)
    check_kafka_env(ctx, container.where, container.env, secured_kafka_expected)
    check_values(ctx, container.where, container.env)


def check_required(ctx: Context, container: Container) -> None:
    where, env = container.where, container.env
    for name in REQUIRED_APP_ENV:
        if name not in env:
            ctx.problem(where, f"environment variable {name} is not set (docs/CONTRACT.md)")
    for name in SERVICE_REQUIRED_ENV.get(container.module or "", ()):
        if name not in env:
            ctx.problem(where, f"environment variable {name} is not set")
        elif name.endswith("_HTTP_HOST") and env[name] in LOOPBACK_HOSTS:
            ctx.problem(where, f"{name}={env[name]} binds loopback only: probes and "
                        "peers cannot reach the service (use 0.0.0.0)")


def check_kafka_env(ctx: Context, where: str, env: Mapping[str, str | None], secured_expected: bool) -> None:
    protocol = env.get("KAFKA_SECURITY_PROTOCOL")
    if protocol is not None and protocol not in SECURITY_PROTOCOLS:
        ctx.problem(where, f"KAFKA_SECURITY_PROTOCOL={protocol!r} is not one of {', '.join(SECURITY_PROTOCOLS)}")
    if protocol and protocol.startswith("SASL"):
        for name in SASL_ENV:
            if name not in env:
                ctx.problem(where, f"{name} is not set (KAFKA_SECURITY_PROTOCOL={protocol})")
    if secured_expected and protocol == "PLAINTEXT":
        ctx.problem(where, "KAFKA_SECURITY_PROTOCOL=PLAINTEXT in production manifests")


def check_values(ctx: Context, where: str, env: Mapping[str, str | None]) -> None:
    expected = {"KAFKA_ACKS": ("all",), "KAFKA_ENABLE_IDEMPOTENCE": ("true",), "SMTP_TLS": SMTP_TLS_VALUES}
    for name, allowed in expected.items():
        value = env.get(name)
        if value is not None and value.strip().lower() not in allowed:
            ctx.problem(where, f"{name}={value!r} should be {' or '.join(allowed)}")
    for name in DB_ENV:
        value = env.get(name)
        if value and not value.startswith(("postgresql://", "postgres://")):
            ctx.problem(where, f"{name} is not a postgresql:// URL (production store)")
    cd_db, nt_db = env.get("CLIENT_DIRECTORY_DB"), env.get("NOTIFIER_DB")
    if cd_db and nt_db and cd_db.rsplit("/", 1)[-1] == nt_db.rsplit("/", 1)[-1]:
        ctx.problem(where, "CLIENT_DIRECTORY_DB and NOTIFIER_DB name the same database")
    for name in ("CLIENT_DIRECTORY_HTTP_PORT", "NOTIFIER_HTTP_PORT", "SMTP_PORT"):
        value = env.get(name)
        if value is not None and not (value.isdigit() and 0 < int(value) < 65536):
            ctx.problem(where, f"{name}={value!r} is not a port number")


def check_topic_settings(ctx: Context, where: str, env: Mapping[str, str | None]) -> None:
    """The topic job's partitions, replication factor and min.insync.replicas."""
    values: dict[str, int] = {}
    for name in PROVISION_ENV[:3]:
        raw = env.get(name)
        if raw is not None and raw.isdigit():
            values[name] = int(raw)
        elif raw is not None:
            ctx.problem(where, f"{name}={raw!r} is not a whole number")
    partitions = values.get("KAFKA_TOPIC_PARTITIONS")
    rf = values.get("KAFKA_TOPIC_REPLICATION_FACTOR")
    isr = values.get("KAFKA_TOPIC_MIN_INSYNC_REPLICAS")
    if partitions is not None:
        ctx.partitions = partitions
    if rf is not None and rf < 3:
        ctx.problem(where, f"replication factor {rf} < 3 in the production topology")
    if rf is not None and isr is not None and not 1 <= isr < rf:
        ctx.problem(where, f"min.insync.replicas {isr} must be at least 1 and below the "
                    f"replication factor {rf} (one broker down must not stop writes)")
