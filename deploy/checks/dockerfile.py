"""``deploy/Dockerfile``: multi-stage, pinned base images, a non-root user, the default entry
point, constraints used by ``pip install``, COPY sources present and not dockerignored."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from deploy.checks.common import (
    DEFAULT_MODULE,
    DOCKERFILE,
    Context,
    dockerignore_patterns,
    dockerignored,
    entry_module,
    image_is_pinned,
)

PYTHON_BASE = re.compile(r"^python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$")
Instruction = tuple[str, str]  # (KEYWORD, the rest of the line)


@dataclass
class Stage:
    image: str
    name: str | None
    lines: list[Instruction] = field(default_factory=list)


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments left out."""
    found: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if (not pending and not line) or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        keyword, _, rest = pending.partition(" ")
        found.append((keyword.upper(), rest.strip()))
        pending = ""
    return found


def stages(lines: list[Instruction]) -> list[Stage]:
    found: list[Stage] = []
    for keyword, rest in lines:
        if keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            found.append(Stage(words[0] if words else "", name))
        elif found:
            found[-1].lines.append((keyword, rest))
    return found


def check_dockerfile(ctx: Context) -> None:
    path = ctx.root / DOCKERFILE
    if not path.is_file():
        ctx.problem(DOCKERFILE, "missing")
        return
    built = stages(instructions(path.read_text(encoding="utf-8")))
    if len(built) < 2:
        ctx.problem(DOCKERFILE, "not multi-stage (a builder stage and a runtime stage)")
    check_base_images(ctx, built)
    if not built:
        return
    check_runtime_stage(ctx, built)
    check_cmd(ctx, built[-1].lines)
    check_copy_sources(ctx, built)


def check_base_images(ctx: Context, built: list[Stage]) -> None:
    names = {stage.name for stage in built if stage.name}
    for stage in built:
        if stage.image in names:
            continue
        if not image_is_pinned(stage.image):
            ctx.problem(DOCKERFILE, f"base image {stage.image!r} is not pinned by tag")
        elif stage.image.startswith("python:") and not PYTHON_BASE.match(stage.image):
            ctx.problem(DOCKERFILE, f"base image {stage.image!r} is not python:3.11.x-slim-bookworm")


def check_runtime_stage(ctx: Context, built: list[Stage]) -> None:
    lines = built[-1].lines
    users = [rest for keyword, rest in lines if keyword == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        ctx.problem(DOCKERFILE, "the runtime stage does not switch to a non-root USER")
    if len(built) >= 2 and not any(keyword == "COPY" and "--from=" in rest for keyword, rest in lines):
        ctx.problem(DOCKERFILE, "the runtime stage copies nothing from the builder stage")
    builder_runs = " ".join(rest for stage in built[:-1] for keyword, rest in stage.lines if keyword == "RUN")
    if "pip install" not in builder_runs or "constraints.txt" not in builder_runs:
        ctx.problem(DOCKERFILE, "the builder does not `pip install -c constraints.txt .`")


def check_cmd(ctx: Context, lines: list[Instruction]) -> None:
    cmds = [rest for keyword, rest in lines if keyword == "CMD"]
    if not cmds:
        ctx.problem(DOCKERFILE, "the runtime stage has no CMD")
        return
    try:
        cmd = json.loads(cmds[-1])
    except json.JSONDecodeError:
        cmd = None
        ctx.problem(DOCKERFILE, "CMD is not in exec form (a JSON list)")
    module = entry_module(cmd)
    if cmd is not None and module != DEFAULT_MODULE:
        ctx.problem(DOCKERFILE, f"the default CMD should run python -m {DEFAULT_MODULE}")
    ctx.default_module = module
    if module:
        ctx.check_module(DOCKERFILE + " CMD", module)


def ignore_file(root: Path) -> Path | None:
    candidates = (root / f"{DOCKERFILE}.dockerignore", root / ".dockerignore")
    return next((p for p in candidates if p.is_file()), None)


def check_copy_sources(ctx: Context, built: list[Stage]) -> None:
    ignore = ignore_file(ctx.root)
    ignored = dockerignore_patterns(ignore.read_text()) if ignore else []
    for stage in built:
        for keyword, rest in stage.lines:
            if keyword != "COPY" or "--from=" in rest:
                continue
            words = [w for w in rest.split() if not w.startswith("--")]
            for source in words[:-1]:
                if not (ctx.root / source).exists():
                    ctx.problem(DOCKERFILE, f"COPY source {source} does not exist")
                elif ignore and dockerignored(ignored, source):
                    ctx.problem(DOCKERFILE, f"COPY source {source} is excluded by {ctx.rel(ignore)}")
