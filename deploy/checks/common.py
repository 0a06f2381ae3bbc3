"""What every check shares: where the files are, the problems found so far, and small
readers of commands, images, quantities and compose interpolation."""

from __future__ import annotations

import fnmatch
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KUBERNETES_VERSION = "1.37.0"
DOCKERFILE = "deploy/Dockerfile"
COMPOSE_FILE = "deploy/compose.yaml"
K8S_DIR = "deploy/k8s"
DEFAULT_MODULE = "services.client_directory"
PROVISION_MODULE = "deploy.provision_topics"
#: Entry-point module of each service -> the variable holding its HTTP port.
SERVICE_PORT_ENV: dict[str, str] = {
    "services.client_directory": "CLIENT_DIRECTORY_HTTP_PORT",
    "services.notifier": "NOTIFIER_HTTP_PORT",
}
HEALTH_PATHS = frozenset(("/healthz", "/readyz"))
MIN_SERVICE_REPLICAS = 2

_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?P<op>:?[-?])?(?P<rest>[^}]*)\}")
_QUANTITY = re.compile(r"^(?P<number>\d+(?:\.\d+)?)(?P<unit>Ki|Mi|Gi|Ti|k|K|M|G|T|m)?$")
_UNITS = {
    None: 1, "m": 0.001, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}


@dataclass
class Container:
    """What the cross-checks need to know about one container (compose or Kubernetes)."""

    where: str
    module: str | None
    env: dict[str, str | None]  # None: set from a Secret or required from the shell (unknown here)
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


@dataclass
class Context:
    """One run of the check: the checkout, what earlier checks learnt, the problems."""

    root: Path
    kubernetes_version: str = KUBERNETES_VERSION
    result: Result = field(default_factory=Result)
    app_image: str | None = None  # the image compose builds from deploy/Dockerfile
    default_module: str | None = None  # the Dockerfile's CMD
    partitions: int = 12
    consumed_topics: list[str] = field(default_factory=list)
    compose_topic_settings: dict[str, str] = field(default_factory=dict)
    project_version: str | None = None
    known_env: frozenset[str] | None = None  # None: the services could not say (reported once)

    def problem(self, where: str, text: str) -> None:
        self.result.problems.append(f"{where}: {text}")

    def rel(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def check_module(self, where: str, module: str) -> None:
        path = module_path(self.root, module)
        if not path.is_file():
            self.problem(where, f"entry point `python -m {module}` does not exist ({self.rel(path)} is missing)")


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
    """A compose value with ``${VAR:-default}`` replaced by its default; ``${VAR}`` and
    ``${VAR:?message}`` (required from the shell, no default) are kept as written."""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    text = text.replace("$$", "\0")

    def substitute(match: re.Match[str]) -> str:
        op = match.group("op") or ""
        return match.group("rest") if op.endswith("-") else match.group(0)

    return _INTERPOLATION.sub(substitute, text).replace("\0", "$")


def interpolations(value: Any) -> list[tuple[str, str]]:
    """(variable, operator) of each ``${...}`` in a compose value: ``""``, ``-``, ``:-``, ``?``, ``:?``."""
    text = str(value).replace("$$", "")
    return [(m.group("name"), m.group("op") or "") for m in _INTERPOLATION.finditer(text)]


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
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


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
