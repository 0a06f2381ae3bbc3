"""``deploy/compose.yaml``: every service has an image or a build, pinned images, health
checks on long-running services, ``depends_on`` targets that exist, secrets required from
the shell (never a default), and the application services built from ``deploy/Dockerfile``
with their whole environment (see compose_apps for the services themselves and Kafka)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deploy.checks.common import (
    COMPOSE_FILE,
    DOCKERFILE,
    PROVISION_MODULE,
    SERVICE_PORT_ENV,
    Container,
    Context,
    entry_command,
    image_is_pinned,
    image_tag,
    interpolate,
    interpolations,
    is_server,
    load_yaml_documents,
)
from deploy.checks.compose_apps import check_compose_apps, check_compose_kafka
from deploy.checks.variables import PROVISION_ENV, SECRET_ENV, check_app_env, check_env_names, check_topic_settings

CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")


@dataclass
class Compose:
    """The file's services, and what the per-service pass collects for the cross-checks."""

    path: Path
    services: dict[str, Any]
    named_volumes: Mapping[str, Any]
    one_shot: set[str]
    apps: list[tuple[dict[str, Any], Container]] = field(default_factory=list)
    brokers: list[tuple[str, dict[str, str | None]]] = field(default_factory=list)


def load_compose(ctx: Context) -> Compose | None:
    path = ctx.root / COMPOSE_FILE
    if not path.is_file():
        ctx.problem(COMPOSE_FILE, "missing")
        return None
    try:
        docs = load_yaml_documents(path)
    except yaml.YAMLError as error:
        ctx.problem(COMPOSE_FILE, f"not valid YAML: {error}")
        return None
    ctx.result.compose_files += 1
    if len(docs) != 1 or not isinstance(docs[0], dict):
        ctx.problem(COMPOSE_FILE, "expected one YAML mapping")
        return None
    services = docs[0].get("services")
    if not isinstance(services, dict) or not services:
        ctx.problem(COMPOSE_FILE, "no services")
        return None
    one_shot = {
        target
        for spec in services.values()
        if isinstance(spec, dict) and isinstance(spec.get("depends_on"), dict)
        for target, dep in spec["depends_on"].items()
        if isinstance(dep, dict) and dep.get("condition") == "service_completed_successfully"
    }
    return Compose(path, services, docs[0].get("volumes") or {}, one_shot)


def check_compose(ctx: Context) -> None:
    compose = load_compose(ctx)
    if compose is None:
        return
    for name, spec in compose.services.items():
        where = f"{COMPOSE_FILE}: service {name}"
        if isinstance(spec, dict):
            check_service(ctx, compose, name, where, spec)
        else:
            ctx.problem(where, "not a mapping")
    check_compose_apps(ctx, compose.apps, compose.services, compose.one_shot)
    check_compose_kafka(ctx, compose.brokers)


def check_service(ctx: Context, compose: Compose, name: str, where: str, spec: dict[str, Any]) -> None:
    image, build = spec.get("image"), spec.get("build")
    if not image and not build:
        ctx.problem(where, "has neither image nor build")
    if image and not build and not image_is_pinned(interpolate(image)):
        ctx.problem(where, f"image {image!r} is not pinned by tag")
    built_here = bool(build) and check_compose_build(ctx, where, compose.path.parent, build)
    if build and not image:
        ctx.problem(where, "builds an image without naming it (image: name:tag)")
    env = compose_env(ctx, where, spec.get("environment"))
    check_compose_secrets(ctx, where, spec.get("environment"))
    if spec.get("env_file"):
        ctx.problem(where, "env_file cannot be checked; set environment: explicitly")
    module, args = entry_command(spec.get("command"))
    if module is None and built_here:
        module = ctx.default_module
    is_job = name in compose.one_shot or (str(spec.get("restart", "no")) == "no" and module == PROVISION_MODULE)
    check_healthcheck_present(ctx, where, spec.get("healthcheck"), is_job)
    check_compose_depends(ctx, where, spec.get("depends_on"), compose.services)
    check_compose_volumes(ctx, where, compose.path.parent, spec.get("volumes"), compose.named_volumes)
    if module:
        ctx.check_module(where, module)
    runs_ours = module is not None and (module in SERVICE_PORT_ENV or module.startswith("deploy."))
    if built_here or runs_ours:
        if not built_here:
            ctx.problem(where, f"runs python -m {module}, not built from {DOCKERFILE}")
        if image:
            check_app_image(ctx, where, str(image))
        check_env_names(ctx, where, env)
    container = Container(where, module, env, serves=is_server(module, args))
    if container.serves:
        compose.apps.append((spec, container))
    elif module in SERVICE_PORT_ENV:
        check_app_env(ctx, container, secured_kafka_expected=False)
    if module == PROVISION_MODULE:
        check_compose_topics_job(ctx, where, env)
    if image and str(image).startswith("apache/kafka:"):
        compose.brokers.append((name, env))


def check_healthcheck_present(ctx: Context, where: str, healthcheck: Any, is_job: bool) -> None:
    if is_job:
        return
    if not isinstance(healthcheck, dict) or healthcheck.get("disable") or not healthcheck.get("test"):
        ctx.problem(where, "no healthcheck")


def compose_env(ctx: Context, where: str, environment: Any) -> dict[str, str | None]:
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
        ctx.problem(where, "environment is neither a mapping nor a list")
    return env


def check_compose_secrets(ctx: Context, where: str, environment: Any) -> None:
    """A secret comes from the shell, required (``${NAME:?message}``), never with a default."""
    items = environment.items() if isinstance(environment, dict) else (
        str(item).partition("=")[::2] for item in environment or [])
    for name, value in items:
        if str(name) not in SECRET_ENV or value is None:
            continue
        used = interpolations(value)
        if not used:
            ctx.problem(where, f"{name} has a literal value; take it from the environment "
                        f"(${{{name}:?set {name}}})")
        for variable, op in used:
            if op.endswith("-"):
                ctx.problem(where, f"{name} falls back to a default for ${{{variable}}}; "
                            f"require it (${{{variable}:?set {variable}}})")
            elif not op.endswith("?"):
                ctx.problem(where, f"{name} takes ${{{variable}}} without requiring it; "
                            f"use ${{{variable}:?set {variable}}}")


def check_compose_build(ctx: Context, where: str, base: Path, build: Any) -> bool:
    """True when the service builds deploy/Dockerfile."""
    if isinstance(build, str):
        context, dockerfile = build, "Dockerfile"
    elif isinstance(build, dict):
        context = str(build.get("context", "."))
        dockerfile = str(build.get("dockerfile", "Dockerfile"))
    else:
        ctx.problem(where, "build is neither a path nor a mapping")
        return False
    context_dir = (base / context).resolve()
    if not context_dir.is_dir():
        ctx.problem(where, f"build context {context} does not exist")
        return False
    dockerfile_path = (context_dir / dockerfile).resolve()
    if not dockerfile_path.is_file():
        ctx.problem(where, f"Dockerfile {dockerfile} does not exist in the build context")
        return False
    if dockerfile_path != (ctx.root / DOCKERFILE).resolve():
        ctx.problem(where, f"builds {ctx.rel(dockerfile_path)}, not {DOCKERFILE}")
        return False
    if context_dir != ctx.root:
        ctx.problem(where, f"{DOCKERFILE} needs the repository root as build context")
    return True


def check_app_image(ctx: Context, where: str, image: str) -> None:
    image = interpolate(image)
    if not image_is_pinned(image):
        ctx.problem(where, f"image {image!r} is not pinned by tag")
    if ctx.app_image is None:
        ctx.app_image = image
        if ctx.project_version and image_tag(image) != ctx.project_version:
            ctx.problem(where, f"image {image!r} is not tagged with the project version "
                        f"{ctx.project_version} (pyproject.toml)")
    elif image != ctx.app_image:
        ctx.problem(where, f"image {image!r} differs from {ctx.app_image!r}: both services run one image")


def check_compose_depends(ctx: Context, where: str, depends: Any, services: Mapping[str, Any]) -> None:
    if depends is None:
        return
    items: dict[str, Any]
    if isinstance(depends, list):
        items = {str(target): {} for target in depends}
    elif isinstance(depends, dict):
        items = {str(k): v for k, v in depends.items()}
    else:
        ctx.problem(where, "depends_on is neither a list nor a mapping")
        return
    for target, dep in items.items():
        if target not in services:
            ctx.problem(where, f"depends_on {target}, which is not a service")
            continue
        condition = dep.get("condition", "service_started") if isinstance(dep, dict) else None
        if condition is not None and condition not in CONDITIONS:
            ctx.problem(where, f"depends_on {target}: unknown condition {condition!r}")
        target_spec = services[target] if isinstance(services[target], dict) else {}
        if condition == "service_healthy" and not target_spec.get("healthcheck"):
            ctx.problem(where, f"waits for {target} to be healthy but it has no healthcheck")


def check_compose_volumes(ctx: Context, where: str, base: Path, volumes: Any, named: Mapping[str, Any]) -> None:
    for volume in volumes or []:
        source = volume.get("source") if isinstance(volume, dict) else str(volume).split(":")[0]
        if not source:
            continue
        if source.startswith((".", "/")):
            if source.startswith(".") and not (base / source).exists():
                ctx.problem(where, f"bind mount source {source} does not exist")
        elif source not in named:
            ctx.problem(where, f"volume {source} is not declared under volumes:")


def check_compose_topics_job(ctx: Context, where: str, env: Mapping[str, str | None]) -> None:
    for name in ("KAFKA_BOOTSTRAP_SERVERS", *PROVISION_ENV[:3]):
        if not env.get(name):
            ctx.problem(where, f"{name} is not set on the topic job")
    ctx.compose_topic_settings = {k: v for k, v in env.items() if v is not None}
    check_topic_settings(ctx, where, env)
