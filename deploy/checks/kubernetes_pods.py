"""One pod template of ``deploy/k8s``: images, entry points, environment (ConfigMap and
Secret keys resolved), non-root, resources and probes of each container."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deploy.checks.common import (
    COMPOSE_FILE,
    DOCKERFILE,
    HEALTH_PATHS,
    K8S_DIR,
    SERVICE_PORT_ENV,
    Container,
    Context,
    entry_command,
    image_is_pinned,
    is_server,
    parse_quantity,
)
from deploy.checks.variables import SECRET_ENV, check_app_env, check_env_names, http_port

MEMORY_LIMIT_MIN = 256 * 2**20
MEMORY_LIMIT_MAX = 512 * 2**20
ConfigMaps = Mapping[str, Mapping[str, str]]
Secrets = Mapping[str, set[str]]


def check_pod(ctx: Context, where: str, pod: Mapping[str, Any], configmaps: ConfigMaps,
              secrets: Secrets) -> list[Container]:
    found: list[Container] = []
    pod_non_root = (pod.get("securityContext") or {}).get("runAsNonRoot") is True
    for spec in pod.get("containers") or []:
        cwhere = f"{where} container {spec.get('name')}"
        module, args = entry_command([*(spec.get("command") or []), *(spec.get("args") or [])])
        ours = check_image(ctx, cwhere, str(spec.get("image", "")), module)
        module = module or (ctx.default_module if ours else None)
        if module:
            ctx.check_module(cwhere, module)
        env = k8s_env(ctx, cwhere, spec, configmaps, secrets)
        container = Container(cwhere, module, env, serves=is_server(module, args))
        found.append(container)
        if ours:
            check_env_names(ctx, cwhere, env)
        container_non_root = (spec.get("securityContext") or {}).get("runAsNonRoot")
        if not (pod_non_root or container_non_root is True) or container_non_root is False:
            ctx.problem(cwhere, "does not set securityContext.runAsNonRoot: true")
        check_resources(ctx, cwhere, spec.get("resources") or {})
        check_probes(ctx, cwhere, spec, container)
        if module in SERVICE_PORT_ENV:
            check_app_env(ctx, container, secured_kafka_expected=True)
    return found


def check_image(ctx: Context, where: str, image: str, module: str | None) -> bool:
    """Whether the container runs the application image (checked to be the one compose builds)."""
    if not image_is_pinned(image):
        ctx.problem(where, f"image {image!r} is not pinned by tag")
    ours = module is not None or (ctx.app_image is not None and image == ctx.app_image)
    if ours and ctx.app_image is None:
        ctx.problem(where, f"cannot tell the image is built from {DOCKERFILE} (no service of {COMPOSE_FILE} builds it)")
    elif ours and image != ctx.app_image:
        ctx.problem(where, f"image {image!r} is not {ctx.app_image!r}, the image built from {DOCKERFILE}")
    return ours


def k8s_env(ctx: Context, where: str, spec: Mapping[str, Any], configmaps: ConfigMaps,
            secrets: Secrets) -> dict[str, str | None]:
    env: dict[str, str | None] = {}
    for source in spec.get("envFrom") or []:
        if "configMapRef" in source:
            name = source["configMapRef"].get("name")
            if name in configmaps:
                env.update(configmaps[name])
            elif not source["configMapRef"].get("optional"):
                ctx.problem(where, f"envFrom ConfigMap {name} is not defined here")
        if "secretRef" in source:
            ctx.problem(where, "envFrom secretRef hides which keys are needed; use env[].valueFrom.secretKeyRef")
    for item in spec.get("env") or []:
        name = str(item.get("name"))
        env[name] = env_item(ctx, where, name, item, configmaps, secrets)
    return env


def env_item(ctx: Context, where: str, name: str, item: Mapping[str, Any], configmaps: ConfigMaps,
             secrets: Secrets) -> str | None:
    """The value of one env[] entry: literal, from a ConfigMap key, or None (a Secret's)."""
    if "value" in item:
        if name in SECRET_ENV:
            ctx.problem(where, f"{name} has a literal value; take it from a secretKeyRef")
        return str(item["value"])
    ref = item.get("valueFrom") or {}
    if "secretKeyRef" in ref:
        secret, key = ref["secretKeyRef"].get("name"), ref["secretKeyRef"].get("key")
        if secret not in secrets or key not in secrets[secret]:
            ctx.problem(where, f"{name}: key {key!r} of Secret {secret} is not described in {K8S_DIR}/examples")
        return None
    if "configMapKeyRef" in ref:
        cm, key = ref["configMapKeyRef"].get("name"), ref["configMapKeyRef"].get("key")
        if key not in configmaps.get(cm, {}):
            ctx.problem(where, f"{name}: key {key!r} of ConfigMap {cm} is not defined")
        return configmaps.get(cm, {}).get(key)
    return None


def check_resources(ctx: Context, where: str, resources: Mapping[str, Any]) -> None:
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    for key in ("cpu", "memory"):
        if key not in requests:
            ctx.problem(where, f"no resources.requests.{key}")
    if "memory" not in limits:
        ctx.problem(where, "no resources.limits.memory")
        return
    limit = parse_quantity(limits["memory"])
    if limit is None:
        ctx.problem(where, f"resources.limits.memory {limits['memory']!r} is unreadable")
    elif not MEMORY_LIMIT_MIN <= limit <= MEMORY_LIMIT_MAX:
        ctx.problem(where, f"resources.limits.memory {limits['memory']} is outside 256Mi-512Mi")
    request = parse_quantity(requests.get("memory", 0))
    if limit is not None and request is not None and request > limit:
        ctx.problem(where, "resources.requests.memory exceeds the limit")


def check_probes(ctx: Context, where: str, spec: Mapping[str, Any], container: Container) -> None:
    ports = {str(p.get("name")): int(p.get("containerPort", 0)) for p in spec.get("ports") or []}
    port = http_port(container)
    if container.serves and container.module in SERVICE_PORT_ENV:
        check_server_ports(ctx, where, SERVICE_PORT_ENV[container.module], port, set(ports.values()))
        for probe, path in {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}.items():
            got = ((spec.get(probe) or {}).get("httpGet") or {}).get("path")
            if got != path:
                ctx.problem(where, f"{probe} should GET {path} (has {got or 'none'})")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        http_get = (spec.get(probe) or {}).get("httpGet")
        if not http_get:
            continue
        checked_above = container.serves and probe != "startupProbe"
        if http_get.get("path") not in HEALTH_PATHS and not checked_above:
            ctx.problem(where, f"{probe} path {http_get.get('path')} is not /healthz or /readyz")
        named = http_get.get("port")
        number = ports.get(str(named)) if isinstance(named, str) else named
        if number is None:
            ctx.problem(where, f"{probe} port {named!r} is no container port")
        elif port is not None and number != port:
            ctx.problem(where, f"{probe} port {number} is not the HTTP port {port}")


def check_server_ports(ctx: Context, where: str, variable: str, port: int | None, numbers: set[int]) -> None:
    if port is None:
        ctx.problem(where, f"{variable} has no literal value to check the container port against")
    elif port not in numbers:
        ctx.problem(where, f"no containerPort {port} ({variable})")
    elif any(number != port for number in numbers):
        ctx.problem(where, f"containerPorts {sorted(numbers)} are not all {port}")
