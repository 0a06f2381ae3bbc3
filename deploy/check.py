"""Static check of the production topology: ``python -m deploy.check [ROOT]`` (make deploy-check).

Reads, without Docker or a cluster:

- ``deploy/Dockerfile``: multi-stage, pinned base images, a non-root user, the default
  entry point, constraints used by ``pip install``, COPY sources present;
- ``deploy/compose.yaml``: every service has an image or a build, pinned images, health
  checks on long-running services, ``depends_on`` targets that exist, the application
  services built from ``deploy/Dockerfile`` with every DESIGN.md 2.3 variable set (and no
  unknown one), health checks on ``/healthz`` / ``/readyz`` on the service's HTTP port,
  a 3-broker KRaft cluster, the topic job, PostgreSQL and the mail sink they point at;
- every manifest under ``deploy/k8s`` (PyYAML), validated against the Kubernetes
  schemas shipped with ``kubernetes-validate`` (strict: unknown fields are errors), then
  cross-checked: images, entry points, environment (ConfigMap and Secret keys resolved),
  probes, ports, resources, replicas versus partitions, PDBs, HPAs, Services, the topic Job
  and the kustomization;
- the topic list of ``deploy/provision_topics.py`` against ``docs/ARCHITECTURE.md``.

Prints one line per problem, then ``deploy-check: N manifests, 1 compose file, P problems``;
exits 1 when there is a problem.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import json
import re
import shlex
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KUBERNETES_VERSION = "1.37.0"

#: DESIGN.md 2.3: the variables both services read (the secured-Kafka ones are below).
DESIGN_ENV: tuple[str, ...] = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "CLIENT_DIRECTORY_DB",
    "NOTIFIER_DB",
    "CLIENT_DIRECTORY_HTTP_PORT",
    "NOTIFIER_HTTP_PORT",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "SMTP_TLS",
    "MAIL_FROM",
    "PORTAL_JWT_SECRET",
    "PORTAL_BASE_URL",
)
KAFKA_SECURITY_ENV: tuple[str, ...] = (
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CAFILE",
)
SASL_ENV: tuple[str, ...] = ("KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD")
#: Producer settings the services read besides DESIGN.md 2.3 (docs/DEPLOY.md).
PRODUCER_ENV: tuple[str, ...] = ("KAFKA_ENABLE_IDEMPOTENCE", "KAFKA_ACKS")
#: Set on every application service of the production topology.
REQUIRED_APP_ENV: tuple[str, ...] = (*DESIGN_ENV, "KAFKA_SECURITY_PROTOCOL", *PRODUCER_ENV)
#: Read by the services' config modules beyond the contract (bind address, public URL of
#: the notifier's unsubscribe endpoint, SMTP tuning, consumer-group override).
SERVICE_EXTRA_ENV: tuple[str, ...] = (
    "CLIENT_DIRECTORY_HTTP_HOST",
    "NOTIFIER_HTTP_HOST",
    "NOTIFIER_PUBLIC_URL",
    "SMTP_TIMEOUT",
    "SMTP_POOL_SIZE",
    "CLIENT_DIRECTORY_GROUP_ID",
    "NOTIFIER_GROUP_ID",
)
#: Per service, what a container needs beyond REQUIRED_APP_ENV: its bind address (the
#: services default to 127.0.0.1, unreachable from probes and peers) and, for the notifier,
#: the public URL its emails link to for one-click unsubscribe.
SERVICE_REQUIRED_ENV: dict[str, tuple[str, ...]] = {
    "services.client_directory": ("CLIENT_DIRECTORY_HTTP_HOST",),
    "services.notifier": ("NOTIFIER_HTTP_HOST", "NOTIFIER_PUBLIC_URL"),
}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
#: Read by deploy.provision_topics.
PROVISION_ENV: tuple[str, ...] = (
    "KAFKA_TOPIC_PARTITIONS",
    "KAFKA_TOPIC_REPLICATION_FACTOR",
    "KAFKA_TOPIC_MIN_INSYNC_REPLICAS",
    "KAFKA_TOPIC_CONFIGS",
    "KAFKA_PROVISION_WAIT_SECONDS",
)
KNOWN_ENV = frozenset(
    (*DESIGN_ENV, *KAFKA_SECURITY_ENV, *PRODUCER_ENV, *SERVICE_EXTRA_ENV, *PROVISION_ENV)
)
KNOWN_ENV_PREFIXES: tuple[str, ...] = ("PYTHON",)
#: Never a literal value in a manifest, never in a ConfigMap.
SECRET_ENV = frozenset(
    (
        "CLIENT_DIRECTORY_DB",
        "NOTIFIER_DB",
        "PORTAL_JWT_SECRET",
        "SMTP_PASSWORD",
        "KAFKA_SASL_PASSWORD",
    )
)

#: Entry-point module of each service -> the variable holding its HTTP port.
DB_ENV: tuple[str, ...] = ("CLIENT_DIRECTORY_DB", "NOTIFIER_DB")
SERVICE_PORT_ENV: dict[str, str] = {
    "services.client_directory": "CLIENT_DIRECTORY_HTTP_PORT",
    "services.notifier": "NOTIFIER_HTTP_PORT",
}
DEFAULT_MODULE = "services.client_directory"
PROVISION_MODULE = "deploy.provision_topics"
HEALTH_PATHS = frozenset(("/healthz", "/readyz"))
SMTP_TLS_VALUES = ("none", "starttls", "tls")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MEMORY_LIMIT_MIN = 256 * 2**20
MEMORY_LIMIT_MAX = 512 * 2**20
MIN_SERVICE_REPLICAS = 2
MIN_BROKERS = 3
DOCKERFILE = "deploy/Dockerfile"
COMPOSE_FILE = "deploy/compose.yaml"
K8S_DIR = "deploy/k8s"
PYTHON_BASE = re.compile(r"^python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$")

_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::?[-?](?P<default>[^}]*))?\}")
_URL = re.compile(r"https?://(?P<host>[^/:\s\"']+)(?::(?P<port>\d+))?(?P<path>/[^\s\"']*)?")
_QUANTITY = re.compile(r"^(?P<number>\d+(?:\.\d+)?)(?P<unit>Ki|Mi|Gi|Ti|k|K|M|G|T|m)?$")
_UNITS = {
    None: 1, "m": 0.001, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}


# ---- small helpers -----------------------------------------------------------------------


def module_path(root: Path, module: str) -> Path:
    """The file ``python -m module`` runs: ``a/b/__main__.py`` for a package, else ``a/b.py``."""
    base = root.joinpath(*module.split("."))
    return base / "__main__.py" if base.is_dir() else base.with_suffix(".py")


def entry_command(command: Any) -> tuple[str | None, list[str]]:
    """(module, its arguments) of a ``python -m module ...`` command (list or string)."""
    if isinstance(command, str):
        try:
            command = shlex.split(command)
        except ValueError:
            return None, []
    if not isinstance(command, list):
        return None, []
    words = [str(word) for word in command]
    if "-m" in words:
        index = words.index("-m")
        if index + 1 < len(words):
            return words[index + 1], words[index + 2 :]
    return None, []


def entry_module(command: Any) -> str | None:
    """The module of a ``python -m module ...`` command (list or string), else None."""
    return entry_command(command)[0]


def is_server(module: str | None, args: Sequence[str]) -> bool:
    """A service's long-running server (``python -m services.x [serve]``), not a CLI task
    such as ``projections rebuild`` or ``digests run``."""
    return module in SERVICE_PORT_ENV and (not args or args[0] == "serve")


def interpolate(value: Any) -> str:
    """A compose value with ``${VAR:-default}`` replaced by its default (``${VAR}`` kept)."""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    text = text.replace("$$", "\0")

    def substitute(match: re.Match[str]) -> str:
        default = match.group("default")
        return default if default is not None else match.group(0)

    return _INTERPOLATION.sub(substitute, text).replace("\0", "$")


def parse_quantity(value: Any) -> float | None:
    """A Kubernetes quantity (``512Mi``, ``0.5Gi``, ``100m``) as a number, None if unreadable."""
    match = _QUANTITY.match(str(value).strip())
    if not match:
        return None
    return float(match.group("number")) * _UNITS[match.group("unit")]


def image_is_pinned(image: str) -> bool:
    """``name:tag`` (not latest) or ``name@sha256:...``."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and bool(tag) and tag != "latest"


def image_tag(image: str) -> str:
    return image.split("@", 1)[0].rpartition(":")[2]


def dockerignore_patterns(text: str) -> list[str]:
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def dockerignored(patterns: Sequence[str], path: str) -> bool:
    """Whether ``path`` (relative to the build context) is left out of the context.

    Docker's rules, simplified: patterns apply in order, the last matching one wins, ``!``
    re-includes, and a pattern matching a directory matches everything below it.
    """
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = (raw[1:] if negate else raw).strip().strip("/")
        if pattern.startswith("./"):
            pattern = pattern[2:]
        if any(fnmatch.fnmatchcase(candidate, pattern) for candidate in candidates):
            excluded = not negate
    return excluded


def hosts_of(value: str) -> list[str]:
    """Host names in ``host:port,host:port`` or in a URL."""
    if "://" in value:
        match = re.match(r"^[a-z+]+://(?:[^@/]*@)?(?P<host>[^:/?]+)", value)
        return [match.group("host")] if match else []
    parts = [part.strip() for part in value.split(",") if part.strip()]
    return [part.rpartition(":")[0] if ":" in part else part for part in parts]


def load_yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def load_provisioning(root: Path) -> tuple[list[str], list[str], int]:
    """(consumed topics, all topics, default partitions) from ``deploy/provision_topics.py``."""
    path = root / "deploy" / "provision_topics.py"
    spec = importlib.util.spec_from_file_location("_deploy_check_provision_topics", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return list(module.CONSUMED_TOPICS), list(module.all_topics()), int(module.DEFAULT_PARTITIONS)


def architecture_topics(text: str) -> tuple[set[str], set[str]]:
    """(every named topic, the topics our services consume) from the Topics table."""
    topics: set[str] = set()
    consumed: set[str] = set()
    in_section = False
    for line in text.splitlines():
        if line.startswith("## "):
            in_section = line.strip().lower() == "## topics"
            continue
        if not in_section or not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([a-z0-9.\-]+)`", cells[0]) if cells else None
        if not match:
            continue
        topics.add(match.group(1))
        consumers = cells[2] if len(cells) > 2 else ""
        if "client_directory" in consumers or "notifier" in consumers:
            consumed.add(match.group(1))
    return topics, consumed


# ---- the check ---------------------------------------------------------------------------


@dataclass
class Container:
    """What the cross-checks need to know about one container (compose or Kubernetes)."""

    where: str
    module: str | None
    env: dict[str, str | None]  # None: set from a Secret (value unknown here)
    serves: bool = False  # the HTTP server of a service (probes, ports), not a CLI task


@dataclass
class Result:
    manifests: int = 0
    compose_files: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        files = "compose file" if self.compose_files == 1 else "compose files"
        return (
            f"deploy-check: {self.manifests} manifests, {self.compose_files} {files}, "
            f"{len(self.problems)} problems"
        )


class Checker:
    def __init__(self, root: Path, kubernetes_version: str = KUBERNETES_VERSION) -> None:
        self.root = root.resolve()
        self.kubernetes_version = kubernetes_version
        self.result = Result()
        self.app_image: str | None = None
        self.default_module: str | None = None
        self.partitions = 12
        self.consumed_topics: list[str] = []
        self.compose_topic_settings: dict[str, str] = {}
        self.project_version: str | None = None

    # -- reporting

    def problem(self, where: str, text: str) -> None:
        self.result.problems.append(f"{where}: {text}")

    def rel(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def run(self) -> Result:
        self.check_project()
        self.check_topics()
        self.check_dockerfile()
        self.check_compose()
        self.check_kubernetes()
        return self.result

    # -- project and topics

    def check_project(self) -> None:
        pyproject = self.root / "pyproject.toml"
        try:
            self.project_version = str(tomllib.loads(pyproject.read_text())["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError) as error:
            self.problem("pyproject.toml", f"cannot read the project version ({error})")

    def check_topics(self) -> None:
        where = "deploy/provision_topics.py"
        if not (self.root / where).is_file():
            self.problem(where, "missing (entry point of the topic-provisioning job)")
            return
        try:
            consumed, topics, self.partitions = load_provisioning(self.root)
        except Exception as error:
            self.problem(where, f"cannot be imported: {type(error).__name__}: {error}")
            return
        self.consumed_topics = consumed
        arch_path = self.root / "docs" / "ARCHITECTURE.md"
        if not arch_path.is_file():
            self.problem("docs/ARCHITECTURE.md", "missing: cannot cross-check the topic list")
            return
        arch_topics, arch_consumed = architecture_topics(arch_path.read_text(encoding="utf-8"))
        if not arch_topics:
            self.problem("docs/ARCHITECTURE.md", "no topic table found under '## Topics'")
            return
        base = {t for t in topics if not t.endswith(".dlq")}
        for name in sorted(arch_topics - base):
            self.problem(where, f"topic {name} of docs/ARCHITECTURE.md is not provisioned")
        for name in sorted(base - arch_topics):
            self.problem(where, f"topic {name} is not in docs/ARCHITECTURE.md")
        for name in sorted(arch_consumed - set(consumed)):
            self.problem(where, f"consumed topic {name} has no {name}.dlq provisioned")
        for name in consumed:
            if f"{name}.dlq" not in topics:
                self.problem(where, f"consumed topic {name} has no {name}.dlq provisioned")

    # -- Dockerfile

    def check_dockerfile(self) -> None:
        path = self.root / DOCKERFILE
        if not path.is_file():
            self.problem(DOCKERFILE, "missing")
            return
        instructions: list[tuple[str, str]] = []
        pending = ""
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if not pending and (not line or line.startswith("#")):
                continue
            if line.startswith("#"):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            pending += line
            keyword, _, rest = pending.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
            pending = ""
        stages: list[dict[str, Any]] = []
        for keyword, rest in instructions:
            if keyword == "FROM":
                words = [w for w in rest.split() if not w.startswith("--")]
                name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
                stages.append({"image": words[0] if words else "", "name": name, "lines": []})
            elif stages:
                stages[-1]["lines"].append((keyword, rest))
        if len(stages) < 2:
            self.problem(DOCKERFILE, "not multi-stage (a builder stage and a runtime stage)")
        names = {stage["name"] for stage in stages if stage["name"]}
        for stage in stages:
            image = stage["image"]
            if image in names:
                continue
            if not image_is_pinned(image):
                self.problem(DOCKERFILE, f"base image {image!r} is not pinned by tag")
            elif image.startswith("python:") and not PYTHON_BASE.match(image):
                self.problem(DOCKERFILE, f"base image {image!r} is not python:3.11.x-slim-bookworm")
        if not stages:
            return
        final = stages[-1]
        lines: list[tuple[str, str]] = final["lines"]
        users = [rest for keyword, rest in lines if keyword == "USER"]
        if not users or users[-1].split(":")[0] in ("root", "0"):
            self.problem(DOCKERFILE, "the runtime stage does not switch to a non-root USER")
        if len(stages) >= 2 and not any(
            keyword == "COPY" and "--from=" in rest for keyword, rest in lines
        ):
            self.problem(DOCKERFILE, "the runtime stage copies nothing from the builder stage")
        builder_runs = " ".join(
            rest for stage in stages[:-1] for keyword, rest in stage["lines"] if keyword == "RUN"
        )
        if "pip install" not in builder_runs or "constraints.txt" not in builder_runs:
            self.problem(DOCKERFILE, "the builder does not `pip install -c constraints.txt .`")
        cmds = [rest for keyword, rest in lines if keyword == "CMD"]
        if not cmds:
            self.problem(DOCKERFILE, "the runtime stage has no CMD")
        else:
            try:
                cmd = json.loads(cmds[-1])
            except json.JSONDecodeError:
                cmd = None
                self.problem(DOCKERFILE, "CMD is not in exec form (a JSON list)")
            module = entry_module(cmd)
            if cmd is not None and module != DEFAULT_MODULE:
                self.problem(DOCKERFILE, f"the default CMD should run python -m {DEFAULT_MODULE}")
            self.default_module = module
            if module:
                self.check_module(DOCKERFILE + " CMD", module)
        ignore_file = next(
            (
                p
                for p in (self.root / f"{DOCKERFILE}.dockerignore", self.root / ".dockerignore")
                if p.is_file()
            ),
            None,
        )
        ignored = dockerignore_patterns(ignore_file.read_text()) if ignore_file else []
        for stage in stages:
            for keyword, rest in stage["lines"]:
                if keyword != "COPY" or "--from=" in rest:
                    continue
                words = [w for w in rest.split() if not w.startswith("--")]
                for source in words[:-1]:
                    if not (self.root / source).exists():
                        self.problem(DOCKERFILE, f"COPY source {source} does not exist")
                    elif ignore_file and dockerignored(ignored, source):
                        self.problem(DOCKERFILE, f"COPY source {source} is excluded by "
                                     f"{self.rel(ignore_file)}")

    def check_module(self, where: str, module: str) -> None:
        path = module_path(self.root, module)
        if not path.is_file():
            self.problem(
                where,
                f"entry point `python -m {module}` does not exist ({self.rel(path)} is missing)",
            )

    # -- environment (shared by compose and Kubernetes)

    def check_app_env(self, container: Container, secured_kafka_expected: bool) -> None:
        """The environment of a container running one of the services."""
        where, env = container.where, container.env
        for name in REQUIRED_APP_ENV:
            if name not in env:
                self.problem(where, f"environment variable {name} is not set (DESIGN.md 2.3)")
        for name in SERVICE_REQUIRED_ENV.get(container.module or "", ()):
            if name not in env:
                self.problem(where, f"environment variable {name} is not set")
            elif name.endswith("_HTTP_HOST") and env[name] in LOOPBACK_HOSTS:
                self.problem(where, f"{name}={env[name]} binds loopback only: probes and "
                             "peers cannot reach the service (use 0.0.0.0)")
        protocol = env.get("KAFKA_SECURITY_PROTOCOL")
        if protocol is not None and protocol not in SECURITY_PROTOCOLS:
            self.problem(where, f"KAFKA_SECURITY_PROTOCOL={protocol!r} is not one of "
                         f"{', '.join(SECURITY_PROTOCOLS)}")
        if protocol and protocol.startswith("SASL"):
            for name in SASL_ENV:
                if name not in env:
                    self.problem(where, f"{name} is not set (KAFKA_SECURITY_PROTOCOL={protocol})")
        if secured_kafka_expected and protocol == "PLAINTEXT":
            self.problem(where, "KAFKA_SECURITY_PROTOCOL=PLAINTEXT in production manifests")
        expected = {"KAFKA_ACKS": ("all",), "KAFKA_ENABLE_IDEMPOTENCE": ("true",),
                    "SMTP_TLS": SMTP_TLS_VALUES}
        for name, allowed in expected.items():
            value = env.get(name)
            if name in env and value is not None and value.strip().lower() not in allowed:
                self.problem(where, f"{name}={value!r} should be {' or '.join(allowed)}")
        for name in ("CLIENT_DIRECTORY_DB", "NOTIFIER_DB"):
            value = env.get(name)
            if value and not value.startswith(("postgresql://", "postgres://")):
                self.problem(where, f"{name} is not a postgresql:// URL (production store)")
        cd_db, nt_db = env.get("CLIENT_DIRECTORY_DB"), env.get("NOTIFIER_DB")
        if cd_db and nt_db and cd_db.rsplit("/", 1)[-1] == nt_db.rsplit("/", 1)[-1]:
            self.problem(where, "CLIENT_DIRECTORY_DB and NOTIFIER_DB name the same database")
        for name in ("CLIENT_DIRECTORY_HTTP_PORT", "NOTIFIER_HTTP_PORT", "SMTP_PORT"):
            value = env.get(name)
            if value is not None and not (value.isdigit() and 0 < int(value) < 65536):
                self.problem(where, f"{name}={value!r} is not a port number")

    def check_env_names(self, where: str, names: Iterable[str]) -> None:
        for name in sorted(set(names)):
            if name not in KNOWN_ENV and not name.startswith(KNOWN_ENV_PREFIXES):
                self.problem(where, f"unknown environment variable {name}")

    def http_port(self, container: Container) -> int | None:
        if container.module not in SERVICE_PORT_ENV:
            return None
        value = container.env.get(SERVICE_PORT_ENV[container.module])
        return int(value) if value and value.isdigit() else None

    # -- compose

    def check_compose(self) -> None:
        path = self.root / COMPOSE_FILE
        if not path.is_file():
            self.problem(COMPOSE_FILE, "missing")
            return
        try:
            docs = load_yaml_documents(path)
        except yaml.YAMLError as error:
            self.problem(COMPOSE_FILE, f"not valid YAML: {error}")
            return
        self.result.compose_files += 1
        if len(docs) != 1 or not isinstance(docs[0], dict):
            self.problem(COMPOSE_FILE, "expected one YAML mapping")
            return
        services = docs[0].get("services")
        if not isinstance(services, dict) or not services:
            self.problem(COMPOSE_FILE, "no services")
            return
        one_shot = {
            target
            for spec in services.values()
            if isinstance(spec, dict) and isinstance(spec.get("depends_on"), dict)
            for target, dep in spec["depends_on"].items()
            if isinstance(dep, dict) and dep.get("condition") == "service_completed_successfully"
        }
        app_containers: list[tuple[str, dict[str, Any], Container]] = []
        brokers: list[tuple[str, dict[str, str | None]]] = []
        named_volumes = docs[0].get("volumes") or {}
        for name, spec in services.items():
            where = f"{COMPOSE_FILE}: service {name}"
            if not isinstance(spec, dict):
                self.problem(where, "not a mapping")
                continue
            image = spec.get("image")
            build = spec.get("build")
            if not image and not build:
                self.problem(where, "has neither image nor build")
            if image and not build and not image_is_pinned(interpolate(image)):
                self.problem(where, f"image {image!r} is not pinned by tag")
            built_here = False
            if build:
                built_here = self.check_compose_build(where, path.parent, build)
                if not image:
                    self.problem(where, "builds an image without naming it (image: name:tag)")
            env = self.compose_env(where, spec.get("environment"))
            if spec.get("env_file"):
                self.problem(where, "env_file cannot be checked; set environment: explicitly")
            module, args = entry_command(spec.get("command"))
            if module is None and built_here:
                module = self.default_module
            restart = str(spec.get("restart", "no"))
            is_job = name in one_shot or (restart == "no" and module == PROVISION_MODULE)
            healthcheck = spec.get("healthcheck")
            if not is_job and (
                not isinstance(healthcheck, dict)
                or healthcheck.get("disable")
                or not healthcheck.get("test")
            ):
                self.problem(where, "no healthcheck")
            self.check_compose_depends(where, spec.get("depends_on"), services, one_shot)
            self.check_compose_volumes(where, path.parent, spec.get("volumes"), named_volumes)
            if module:
                self.check_module(where, module)
            runs_ours = module is not None and (
                module in SERVICE_PORT_ENV or module.startswith("deploy.")
            )
            if built_here or runs_ours:
                if not built_here:
                    self.problem(where, f"runs python -m {module}, not built from {DOCKERFILE}")
                if image:
                    self.check_app_image(where, str(image))
                self.check_env_names(where, env)
            container = Container(where, module, env, serves=is_server(module, args))
            if container.serves:
                app_containers.append((name, spec, container))
            elif module in SERVICE_PORT_ENV:
                self.check_app_env(container, secured_kafka_expected=False)
            if module == PROVISION_MODULE:
                self.check_compose_topics_job(where, env)
            if image and str(image).startswith("apache/kafka:"):
                brokers.append((name, env))
        self.check_compose_apps(app_containers, services, one_shot)
        self.check_compose_kafka(brokers)

    def compose_env(self, where: str, environment: Any) -> dict[str, str | None]:
        env: dict[str, str | None] = {}
        if environment is None:
            return env
        if isinstance(environment, list):
            for item in environment:
                key, sep, value = str(item).partition("=")
                env[key] = interpolate(value) if sep else None
        elif isinstance(environment, dict):
            for key, value in environment.items():
                env[str(key)] = None if value is None else interpolate(value)
        else:
            self.problem(where, "environment is neither a mapping nor a list")
        return env

    def check_compose_build(self, where: str, base: Path, build: Any) -> bool:
        """True when the service builds deploy/Dockerfile."""
        if isinstance(build, str):
            context, dockerfile = build, "Dockerfile"
        elif isinstance(build, dict):
            context = str(build.get("context", "."))
            dockerfile = str(build.get("dockerfile", "Dockerfile"))
        else:
            self.problem(where, "build is neither a path nor a mapping")
            return False
        context_dir = (base / context).resolve()
        if not context_dir.is_dir():
            self.problem(where, f"build context {context} does not exist")
            return False
        dockerfile_path = (context_dir / dockerfile).resolve()
        if not dockerfile_path.is_file():
            self.problem(where, f"Dockerfile {dockerfile} does not exist in the build context")
            return False
        if dockerfile_path != (self.root / DOCKERFILE).resolve():
            self.problem(where, f"builds {self.rel(dockerfile_path)}, not {DOCKERFILE}")
            return False
        if context_dir != self.root:
            self.problem(where, f"{DOCKERFILE} needs the repository root as build context")
        return True

    def check_app_image(self, where: str, image: str) -> None:
        image = interpolate(image)
        if not image_is_pinned(image):
            self.problem(where, f"image {image!r} is not pinned by tag")
        if self.app_image is None:
            self.app_image = image
            if self.project_version and image_tag(image) != self.project_version:
                self.problem(where, f"image {image!r} is not tagged with the project version "
                             f"{self.project_version} (pyproject.toml)")
        elif image != self.app_image:
            self.problem(where, f"image {image!r} differs from {self.app_image!r}: "
                         "both services run one image")

    def check_compose_depends(
        self, where: str, depends: Any, services: Mapping[str, Any], one_shot: set[str]
    ) -> None:
        if depends is None:
            return
        items: dict[str, Any]
        if isinstance(depends, list):
            items = {str(target): {} for target in depends}
        elif isinstance(depends, dict):
            items = {str(k): v for k, v in depends.items()}
        else:
            self.problem(where, "depends_on is neither a list nor a mapping")
            return
        conditions = ("service_started", "service_healthy", "service_completed_successfully")
        for target, dep in items.items():
            if target not in services:
                self.problem(where, f"depends_on {target}, which is not a service")
                continue
            condition = dep.get("condition", "service_started") if isinstance(dep, dict) else None
            if condition is not None and condition not in conditions:
                self.problem(where, f"depends_on {target}: unknown condition {condition!r}")
            target_spec = services[target] if isinstance(services[target], dict) else {}
            if condition == "service_healthy" and not target_spec.get("healthcheck"):
                self.problem(where, f"waits for {target} to be healthy but it has no healthcheck")

    def check_compose_volumes(
        self, where: str, base: Path, volumes: Any, named: Mapping[str, Any]
    ) -> None:
        for volume in volumes or []:
            source = volume.get("source") if isinstance(volume, dict) else str(volume).split(":")[0]
            if not source:
                continue
            if source.startswith((".", "/")):
                if source.startswith(".") and not (base / source).exists():
                    self.problem(where, f"bind mount source {source} does not exist")
            elif source not in named:
                self.problem(where, f"volume {source} is not declared under volumes:")

    def check_compose_topics_job(self, where: str, env: Mapping[str, str | None]) -> None:
        for name in ("KAFKA_BOOTSTRAP_SERVERS", *PROVISION_ENV[:3]):
            if not env.get(name):
                self.problem(where, f"{name} is not set on the topic job")
        self.compose_topic_settings = {k: v for k, v in env.items() if v is not None}
        self.check_topic_settings(where, env)

    def check_topic_settings(self, where: str, env: Mapping[str, str | None]) -> None:
        values: dict[str, int] = {}
        for name in PROVISION_ENV[:3]:
            raw = env.get(name)
            if raw is not None and raw.isdigit():
                values[name] = int(raw)
            elif raw is not None:
                self.problem(where, f"{name}={raw!r} is not a whole number")
        partitions = values.get("KAFKA_TOPIC_PARTITIONS")
        rf = values.get("KAFKA_TOPIC_REPLICATION_FACTOR")
        isr = values.get("KAFKA_TOPIC_MIN_INSYNC_REPLICAS")
        if partitions is not None:
            self.partitions = partitions
        if rf is not None and rf < 3:
            self.problem(where, f"replication factor {rf} < 3 in the production topology")
        if rf is not None and isr is not None and not 1 <= isr < rf:
            self.problem(where, f"min.insync.replicas {isr} must be at least 1 and below the "
                         f"replication factor {rf} (one broker down must not stop writes)")

    def check_compose_apps(
        self,
        apps: list[tuple[str, dict[str, Any], Container]],
        services: Mapping[str, Any],
        one_shot: set[str],
    ) -> None:
        modules = [container.module for _, _, container in apps]
        for module in SERVICE_PORT_ENV:
            if module not in modules:
                self.problem(COMPOSE_FILE, f"no service runs python -m {module}")
        for _name, spec, container in apps:
            where = container.where
            self.check_app_env(container, secured_kafka_expected=False)
            env = container.env
            for var in ("KAFKA_BOOTSTRAP_SERVERS", "SMTP_HOST", *DB_ENV):
                value = env.get(var)
                for host in hosts_of(value) if value else []:
                    if host not in services and not any(
                        isinstance(s, dict) and s.get("hostname") == host for s in services.values()
                    ):
                        self.problem(where, f"{var} points at {host}, which is not a service")
            replicas = (spec.get("deploy") or {}).get("replicas", 1)
            if not isinstance(replicas, int) or replicas < MIN_SERVICE_REPLICAS:
                self.problem(where, f"deploy.replicas is {replicas}, at least "
                             f"{MIN_SERVICE_REPLICAS} wanted")
            elif replicas > self.partitions:
                self.problem(where, f"{replicas} replicas > {self.partitions} partitions")
            port = self.http_port(container)
            for entry in spec.get("ports") or []:
                target = entry.get("target") if isinstance(entry, dict) else (
                    str(entry).rsplit(":", 1)[-1].split("/")[0]
                )
                if port is not None and str(target) != str(port):
                    self.problem(where, f"publishes container port {target}, the service "
                                 f"listens on {port}")
            test = (spec.get("healthcheck") or {}).get("test")
            words = [test] if isinstance(test, str) else [str(w) for w in test or []]
            urls = [m for w in words for m in _URL.finditer(w)]
            if not urls:
                self.problem(where, "healthcheck calls no /healthz or /readyz URL")
            for match in urls:
                if match.group("path") not in HEALTH_PATHS:
                    self.problem(where, f"healthcheck path {match.group('path')} is not "
                                 "/healthz or /readyz")
                if port is not None and match.group("port") != str(port):
                    self.problem(where, f"healthcheck port {match.group('port')} is not the "
                                 f"HTTP port {port}")
            health_module = entry_module(words[1:] if words[:1] == ["CMD"] else words)
            if health_module:
                self.check_module(where + " healthcheck", health_module)
            raw_depends = spec.get("depends_on")
            depends: dict[str, Any] = raw_depends if isinstance(raw_depends, dict) else {}
            if not any(target in one_shot for target in depends):
                self.problem(where, "does not wait for the topic job "
                             "(depends_on condition service_completed_successfully)")

    def check_compose_kafka(self, brokers: list[tuple[str, dict[str, str | None]]]) -> None:
        if len(brokers) < MIN_BROKERS:
            self.problem(COMPOSE_FILE, f"{len(brokers)} Kafka brokers, {MIN_BROKERS} wanted")
            return
        cluster_ids = {env.get("CLUSTER_ID") for _, env in brokers}
        if len(cluster_ids) != 1 or None in cluster_ids:
            self.problem(COMPOSE_FILE, "the Kafka brokers do not share one CLUSTER_ID (KRaft)")
        node_ids = [env.get("KAFKA_NODE_ID") for _, env in brokers]
        if len(set(node_ids)) != len(node_ids) or None in node_ids:
            self.problem(COMPOSE_FILE, "the Kafka brokers need distinct KAFKA_NODE_IDs")
        for name, env in brokers:
            roles = env.get("KAFKA_PROCESS_ROLES") or ""
            if "broker" not in roles:
                self.problem(f"{COMPOSE_FILE}: service {name}", "KAFKA_PROCESS_ROLES lacks broker "
                             "(KRaft mode)")
            voters = env.get("KAFKA_CONTROLLER_QUORUM_VOTERS") or ""
            if "controller" in roles and f"{env.get('KAFKA_NODE_ID')}@" not in voters:
                self.problem(f"{COMPOSE_FILE}: service {name}", "is a controller missing from "
                             "KAFKA_CONTROLLER_QUORUM_VOTERS")
        rf = self.compose_topic_settings.get("KAFKA_TOPIC_REPLICATION_FACTOR")
        if rf and rf.isdigit() and int(rf) > len(brokers):
            self.problem(COMPOSE_FILE, f"replication factor {rf} > {len(brokers)} brokers")

    # -- Kubernetes

    def check_kubernetes(self) -> None:
        import kubernetes_validate

        k8s_dir = self.root / K8S_DIR
        if not k8s_dir.is_dir():
            self.problem(K8S_DIR, "missing")
            return
        files = sorted(p for p in k8s_dir.rglob("*") if p.suffix in (".yaml", ".yml"))
        objects: list[tuple[str, dict[str, Any]]] = []
        kustomizations: list[tuple[Path, dict[str, Any]]] = []
        for path in files:
            rel = self.rel(path)
            try:
                docs = load_yaml_documents(path)
            except yaml.YAMLError as error:
                self.problem(rel, f"not valid YAML: {error}")
                continue
            for index, doc in enumerate(docs):
                if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                    self.problem(f"{rel} document {index + 1}", "not a Kubernetes object")
                    continue
                if doc["kind"] == "Kustomization":
                    kustomizations.append((path, doc))
                    continue
                self.result.manifests += 1
                metadata = doc.get("metadata") or {}
                name = metadata.get("name") or metadata.get("generateName") or "?"
                where = f"{rel}: {doc['kind']}/{name}"
                try:
                    kubernetes_validate.validate(doc, self.kubernetes_version, strict=True)
                except kubernetes_validate.ValidationError as error:
                    path_text = ".".join(str(p) for p in error.path) or "(top)"
                    self.problem(where, f"schema: {path_text}: {error.message}")
                except kubernetes_validate.SchemaNotFoundError as error:
                    self.problem(where, f"schema: {error.message}")
                except Exception as error:
                    self.problem(where, f"schema: cannot validate: {error}")
                objects.append((where, doc))
        self.check_k8s_objects(objects, files, kustomizations)

    def check_k8s_objects(
        self,
        objects: list[tuple[str, dict[str, Any]]],
        files: list[Path],
        kustomizations: list[tuple[Path, dict[str, Any]]],
    ) -> None:
        def of_kind(kind: str) -> list[tuple[str, dict[str, Any]]]:
            return [(w, d) for w, d in objects if d.get("kind") == kind]

        configmaps = {
            d["metadata"]["name"]: {str(k): str(v) for k, v in (d.get("data") or {}).items()}
            for _, d in of_kind("ConfigMap")
        }
        secrets: dict[str, set[str]] = {}
        for where, doc in of_kind("Secret"):
            if "example" not in where.split(":")[0].rsplit("/", 1)[-1]:
                self.problem(where, "a Secret with values is committed; keep only *example* "
                             "files (and create the real Secret out of band)")
            keys = set((doc.get("data") or {}).keys()) | set((doc.get("stringData") or {}).keys())
            secrets[doc["metadata"]["name"]] = keys
            for key, value in (doc.get("stringData") or {}).items():
                if key.endswith("db-url") and not str(value).startswith("postgresql://"):
                    self.problem(where, f"{key} is not a postgresql:// URL")
        for where, data in ((w, d.get("data") or {}) for w, d in of_kind("ConfigMap")):
            for key in data:
                if key in SECRET_ENV:
                    self.problem(where, f"{key} is a secret: use a Secret and secretKeyRef")
        namespaces = {
            (d.get("metadata") or {}).get("namespace")
            for _, d in objects
            if d.get("kind") != "Namespace"
        }
        if len(namespaces) > 1:
            self.problem(K8S_DIR, f"objects spread over namespaces {sorted(map(str, namespaces))}")

        workloads: dict[str, tuple[str, dict[str, Any], int]] = {}
        modules: list[str | None] = []
        for where, doc in of_kind("Deployment"):
            spec = doc.get("spec") or {}
            template = spec.get("template") or {}
            replicas = spec.get("replicas", 1)
            labels = (template.get("metadata") or {}).get("labels") or {}
            selector = (spec.get("selector") or {}).get("matchLabels") or {}
            if not selector or any(labels.get(k) != v for k, v in selector.items()):
                self.problem(where, "spec.selector does not match the pod template labels")
            workloads[doc["metadata"]["name"]] = (where, labels, int(replicas))
            for container in self.check_pod(where, template.get("spec") or {}, configmaps, secrets):
                if container.serves:
                    modules.append(container.module)
                if container.serves:
                    if replicas < MIN_SERVICE_REPLICAS:
                        self.problem(where, f"replicas {replicas} < {MIN_SERVICE_REPLICAS}")
                    if replicas > self.partitions:
                        self.problem(where, f"replicas {replicas} > {self.partitions} partitions")
        for module in SERVICE_PORT_ENV:
            if modules.count(module) != 1:
                self.problem(K8S_DIR, f"{modules.count(module)} Deployments run python -m "
                             f"{module}, one wanted")

        jobs = 0
        for where, doc in of_kind("Job"):
            template = (doc.get("spec") or {}).get("template") or {}
            for container in self.check_pod(where, template.get("spec") or {}, configmaps, secrets):
                if container.module == PROVISION_MODULE:
                    jobs += 1
                    self.check_topic_settings(where, container.env)
                    for name in PROVISION_ENV[:3]:
                        if name not in container.env:
                            self.problem(where, f"{name} is not set on the topic job")
                        elif (
                            name in self.compose_topic_settings
                            and container.env[name] != self.compose_topic_settings[name]
                        ):
                            self.problem(where, f"{name}={container.env[name]} differs from the "
                                         f"compose job ({self.compose_topic_settings[name]})")
        if jobs != 1:
            self.problem(K8S_DIR, f"{jobs} Jobs run python -m {PROVISION_MODULE}, one wanted")

        self.check_k8s_selectors(of_kind("Service"), of_kind("PodDisruptionBudget"), workloads,
                                 objects)
        for where, doc in of_kind("HorizontalPodAutoscaler"):
            spec = doc.get("spec") or {}
            target = spec.get("scaleTargetRef") or {}
            if target.get("kind") != "Deployment" or target.get("name") not in workloads:
                self.problem(where, f"scaleTargetRef {target.get('kind')}/{target.get('name')} "
                             "is not a Deployment here")
            if int(spec.get("maxReplicas", 0)) > self.partitions:
                self.problem(where, f"maxReplicas {spec.get('maxReplicas')} > {self.partitions} "
                             "partitions (extra consumers would sit idle)")
            if int(spec.get("minReplicas", 1)) < MIN_SERVICE_REPLICAS:
                self.problem(where, f"minReplicas < {MIN_SERVICE_REPLICAS}")
        self.check_kustomizations(kustomizations, files)

    def check_k8s_selectors(
        self,
        services: list[tuple[str, dict[str, Any]]],
        pdbs: list[tuple[str, dict[str, Any]]],
        workloads: Mapping[str, tuple[str, dict[str, Any], int]],
        objects: list[tuple[str, dict[str, Any]]],
    ) -> None:
        ports_by_workload: dict[str, dict[str, int]] = {}
        for _, doc in objects:
            if doc.get("kind") != "Deployment":
                continue
            pod = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
            ports: dict[str, int] = {}
            for container in pod.get("containers") or []:
                for port in container.get("ports") or []:
                    ports[str(port.get("name", port.get("containerPort")))] = int(
                        port.get("containerPort", 0)
                    )
            ports_by_workload[doc["metadata"]["name"]] = ports

        def matching(selector: Mapping[str, Any]) -> list[str]:
            return [
                name
                for name, (_, labels, _) in workloads.items()
                if selector and all(labels.get(k) == v for k, v in selector.items())
            ]

        for where, doc in services:
            spec = doc.get("spec") or {}
            targets = matching(spec.get("selector") or {})
            if not targets:
                self.problem(where, "selector matches no Deployment")
                continue
            for port in spec.get("ports") or []:
                target = port.get("targetPort", port.get("port"))
                known = ports_by_workload.get(targets[0], {})
                if str(target) not in known and target not in known.values():
                    self.problem(where, f"targetPort {target} is no container port of "
                                 f"{targets[0]}")
        covered: set[str] = set()
        for where, doc in pdbs:
            spec = doc.get("spec") or {}
            targets = matching((spec.get("selector") or {}).get("matchLabels") or {})
            if not targets:
                self.problem(where, "selector matches no Deployment")
                continue
            covered.update(targets)
            replicas = workloads[targets[0]][2]
            min_available = spec.get("minAvailable")
            if isinstance(min_available, int) and min_available >= replicas:
                self.problem(where, f"minAvailable {min_available} >= replicas {replicas}: "
                             "no node could ever be drained")
        for name, (where, _, _) in workloads.items():
            if name not in covered:
                self.problem(where, "no PodDisruptionBudget covers this Deployment")

    def check_kustomizations(
        self, kustomizations: list[tuple[Path, dict[str, Any]]], files: list[Path]
    ) -> None:
        for path, doc in kustomizations:
            rel = self.rel(path)
            listed = {(path.parent / str(r)).resolve() for r in doc.get("resources") or []}
            for resource in sorted(listed):
                if not resource.exists():
                    self.problem(rel, f"resource {self.rel(resource)} does not exist")
            for file in files:
                if file == path or file.parent != path.parent:
                    continue
                if "example" in file.name and file.resolve() in listed:
                    self.problem(rel, f"lists the example {self.rel(file)}")
                elif "example" not in file.name and file.resolve() not in listed:
                    self.problem(rel, f"does not list {self.rel(file)}")
            for entry in doc.get("images") or []:
                tag = entry.get("newTag")
                if tag is not None and self.project_version and str(tag) != self.project_version:
                    self.problem(rel, f"images: newTag {tag} is not the project version "
                                 f"{self.project_version}")

    def check_pod(
        self,
        where: str,
        pod: Mapping[str, Any],
        configmaps: Mapping[str, Mapping[str, str]],
        secrets: Mapping[str, set[str]],
    ) -> list[Container]:
        found: list[Container] = []
        pod_non_root = (pod.get("securityContext") or {}).get("runAsNonRoot") is True
        for spec in pod.get("containers") or []:
            cwhere = f"{where} container {spec.get('name')}"
            image = str(spec.get("image", ""))
            command = [*(spec.get("command") or []), *(spec.get("args") or [])]
            module, args = entry_command(command)
            if not image_is_pinned(image):
                self.problem(cwhere, f"image {image!r} is not pinned by tag")
            ours = module is not None or (self.app_image is not None and image == self.app_image)
            if ours:
                if self.app_image is None:
                    self.problem(cwhere, f"cannot tell the image is built from {DOCKERFILE} "
                                 f"(no service of {COMPOSE_FILE} builds it)")
                elif image != self.app_image:
                    self.problem(cwhere, f"image {image!r} is not {self.app_image!r}, the image "
                                 f"built from {DOCKERFILE}")
                if module is None:
                    module = self.default_module
            if module:
                self.check_module(cwhere, module)
            env = self.k8s_env(cwhere, spec, configmaps, secrets)
            container = Container(cwhere, module, env, serves=is_server(module, args))
            found.append(container)
            if ours:
                self.check_env_names(cwhere, env)
            container_non_root = (spec.get("securityContext") or {}).get("runAsNonRoot")
            if not (pod_non_root or container_non_root is True) or container_non_root is False:
                self.problem(cwhere, "does not set securityContext.runAsNonRoot: true")
            self.check_resources(cwhere, spec.get("resources") or {})
            self.check_probes(cwhere, spec, container)
            if module in SERVICE_PORT_ENV:
                self.check_app_env(container, secured_kafka_expected=True)
        return found

    def k8s_env(
        self,
        where: str,
        spec: Mapping[str, Any],
        configmaps: Mapping[str, Mapping[str, str]],
        secrets: Mapping[str, set[str]],
    ) -> dict[str, str | None]:
        env: dict[str, str | None] = {}
        for source in spec.get("envFrom") or []:
            if "configMapRef" in source:
                name = source["configMapRef"].get("name")
                if name in configmaps:
                    env.update(configmaps[name])
                elif not source["configMapRef"].get("optional"):
                    self.problem(where, f"envFrom ConfigMap {name} is not defined here")
            if "secretRef" in source:
                self.problem(where, "envFrom secretRef hides which keys are needed; use "
                             "env[].valueFrom.secretKeyRef")
        for item in spec.get("env") or []:
            name = str(item.get("name"))
            if "value" in item:
                env[name] = str(item["value"])
                if name in SECRET_ENV:
                    self.problem(where, f"{name} has a literal value; take it from a secretKeyRef")
                continue
            ref = item.get("valueFrom") or {}
            if "secretKeyRef" in ref:
                secret, key = ref["secretKeyRef"].get("name"), ref["secretKeyRef"].get("key")
                if secret not in secrets or key not in secrets[secret]:
                    self.problem(where, f"{name}: key {key!r} of Secret {secret} is not described "
                                 f"in {K8S_DIR}/examples")
                env[name] = None
            elif "configMapKeyRef" in ref:
                cm, key = ref["configMapKeyRef"].get("name"), ref["configMapKeyRef"].get("key")
                if key not in configmaps.get(cm, {}):
                    self.problem(where, f"{name}: key {key!r} of ConfigMap {cm} is not defined")
                env[name] = configmaps.get(cm, {}).get(key)
            else:
                env[name] = None
        return env

    def check_resources(self, where: str, resources: Mapping[str, Any]) -> None:
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        for key in ("cpu", "memory"):
            if key not in requests:
                self.problem(where, f"no resources.requests.{key}")
        if "memory" not in limits:
            self.problem(where, "no resources.limits.memory")
            return
        limit = parse_quantity(limits["memory"])
        if limit is None:
            self.problem(where, f"resources.limits.memory {limits['memory']!r} is unreadable")
        elif not MEMORY_LIMIT_MIN <= limit <= MEMORY_LIMIT_MAX:
            self.problem(where, f"resources.limits.memory {limits['memory']} is outside "
                         "256Mi-512Mi")
        request = parse_quantity(requests.get("memory", 0))
        if limit is not None and request is not None and request > limit:
            self.problem(where, "resources.requests.memory exceeds the limit")

    def check_probes(self, where: str, spec: Mapping[str, Any], container: Container) -> None:
        ports = {
            str(p.get("name")): int(p.get("containerPort", 0)) for p in spec.get("ports") or []
        }
        http_port = self.http_port(container)
        if container.serves and container.module in SERVICE_PORT_ENV:
            numbers = set(ports.values())
            if http_port is None:
                self.problem(where, f"{SERVICE_PORT_ENV[container.module]} has no literal value "
                             "to check the container port against")
            elif http_port not in numbers:
                self.problem(where, f"no containerPort {http_port} "
                             f"({SERVICE_PORT_ENV[container.module]})")
            elif any(number != http_port for number in numbers):
                self.problem(where, f"containerPorts {sorted(numbers)} are not all {http_port}")
            wanted = {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}
            for probe, path in wanted.items():
                got = ((spec.get(probe) or {}).get("httpGet") or {}).get("path")
                if got != path:
                    self.problem(where, f"{probe} should GET {path} (has {got or 'none'})")
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            http_get = (spec.get(probe) or {}).get("httpGet")
            if not http_get:
                continue
            checked_above = container.serves and probe != "startupProbe"
            if http_get.get("path") not in HEALTH_PATHS and not checked_above:
                self.problem(where, f"{probe} path {http_get.get('path')} is not /healthz or "
                             "/readyz")
            port = http_get.get("port")
            number = ports.get(str(port)) if isinstance(port, str) else port
            if number is None:
                self.problem(where, f"{probe} port {port!r} is no container port")
            elif http_port is not None and number != http_port:
                self.problem(where, f"{probe} port {number} is not the HTTP port {http_port}")


def run_check(root: Path, kubernetes_version: str = KUBERNETES_VERSION) -> Result:
    """Check the topology under ``root`` (the repository root); never raises on bad files."""
    return Checker(root, kubernetes_version).run()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.check", description="Check the production topology files."
    )
    parser.add_argument(
        "root", nargs="?", default=str(Path(__file__).resolve().parent.parent),
        help="repository root (default: this checkout)",
    )
    parser.add_argument(
        "--kubernetes-version", default=KUBERNETES_VERSION,
        help=f"schemas to validate against (default {KUBERNETES_VERSION})",
    )
    args = parser.parse_args(argv)
    result = run_check(Path(args.root), args.kubernetes_version)
    for line in result.problems:
        print(line)
    print(result.summary())
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
