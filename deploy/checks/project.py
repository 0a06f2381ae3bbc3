"""The project's version and the topic list of ``deploy/provision_topics.py`` against
``docs/ARCHITECTURE.md``."""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
from pathlib import Path

from deploy.checks.common import Context


def check_project(ctx: Context) -> None:
    pyproject = ctx.root / "pyproject.toml"
    try:
        ctx.project_version = str(tomllib.loads(pyproject.read_text())["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError) as error:
        ctx.problem("pyproject.toml", f"cannot read the project version ({error})")


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


def check_topics(ctx: Context) -> None:
    where = "deploy/provision_topics.py"
    if not (ctx.root / where).is_file():
        ctx.problem(where, "missing (entry point of the topic-provisioning job)")
        return
    try:
        consumed, topics, ctx.partitions = load_provisioning(ctx.root)
    except Exception as error:
        ctx.problem(where, f"cannot be imported: {type(error).__name__}: {error}")
        return
    ctx.consumed_topics = consumed
    arch_path = ctx.root / "docs" / "ARCHITECTURE.md"
    if not arch_path.is_file():
        ctx.problem("docs/ARCHITECTURE.md", "missing: cannot cross-check the topic list")
        return
    arch_topics, arch_consumed = architecture_topics(arch_path.read_text(encoding="utf-8"))
    if not arch_topics:
        ctx.problem("docs/ARCHITECTURE.md", "no topic table found under '## Topics'")
        return
    base = {t for t in topics if not t.endswith(".dlq")}
    for name in sorted(arch_topics - base):
        ctx.problem(where, f"topic {name} of docs/ARCHITECTURE.md is not provisioned")
    for name in sorted(base - arch_topics):
        ctx.problem(where, f"topic {name} is not in docs/ARCHITECTURE.md")
    for name in sorted(arch_consumed - set(consumed)):
        ctx.problem(where, f"consumed topic {name} has no {name}.dlq provisioned")
    for name in consumed:
        if f"{name}.dlq" not in topics:
            ctx.problem(where, f"consumed topic {name} has no {name}.dlq provisioned")
