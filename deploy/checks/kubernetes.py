"""Every manifest under ``deploy/k8s`` (PyYAML), validated against the Kubernetes schemas
shipped with ``kubernetes-validate`` (strict: unknown fields are errors), then cross-checked:
Secrets and ConfigMaps, replicas versus partitions, PDBs, HPAs, Services, the topic Job and
the kustomization (pods in kubernetes_pods)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deploy.checks.common import (
    K8S_DIR,
    MIN_SERVICE_REPLICAS,
    PROVISION_MODULE,
    SERVICE_PORT_ENV,
    Context,
    load_yaml_documents,
)
from deploy.checks.kubernetes_pods import ConfigMaps, Secrets, check_pod
from deploy.checks.variables import PROVISION_ENV, SECRET_ENV, check_topic_settings

Located = tuple[str, dict[str, Any]]  # (where, the object)
Workloads = dict[str, tuple[str, dict[str, Any], int]]  # name -> (where, pod labels, replicas)


@dataclass
class Manifests:
    files: list[Path]
    objects: list[Located]
    kustomizations: list[tuple[Path, dict[str, Any]]]

    def of_kind(self, kind: str) -> list[Located]:
        return [(w, d) for w, d in self.objects if d.get("kind") == kind]


def check_kubernetes(ctx: Context) -> None:
    k8s_dir = ctx.root / K8S_DIR
    if not k8s_dir.is_dir():
        ctx.problem(K8S_DIR, "missing")
        return
    files = sorted(p for p in k8s_dir.rglob("*") if p.suffix in (".yaml", ".yml"))
    manifests = Manifests(files, [], [])
    for path in files:
        load_manifest(ctx, path, manifests)
    configmaps, secrets = check_config_objects(ctx, manifests)
    workloads = check_deployments(ctx, manifests, configmaps, secrets)
    check_topic_jobs(ctx, manifests, configmaps, secrets)
    check_selectors(ctx, manifests, workloads)
    check_hpas(ctx, manifests, workloads)
    check_kustomizations(ctx, manifests)


def load_manifest(ctx: Context, path: Path, manifests: Manifests) -> None:
    rel = ctx.rel(path)
    try:
        docs = load_yaml_documents(path)
    except yaml.YAMLError as error:
        ctx.problem(rel, f"not valid YAML: {error}")
        return
    for index, doc in enumerate(docs):
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            ctx.problem(f"{rel} document {index + 1}", "not a Kubernetes object")
        elif doc["kind"] == "Kustomization":
            manifests.kustomizations.append((path, doc))
        else:
            ctx.result.manifests += 1
            metadata = doc.get("metadata") or {}
            where = f"{rel}: {doc['kind']}/{metadata.get('name') or metadata.get('generateName') or '?'}"
            validate(ctx, where, doc)
            manifests.objects.append((where, doc))


def validate(ctx: Context, where: str, doc: dict[str, Any]) -> None:
    import kubernetes_validate  # loads its schemas on import: only when a manifest is checked

    try:
        kubernetes_validate.validate(doc, ctx.kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path_text = ".".join(str(p) for p in error.path) or "(top)"
        ctx.problem(where, f"schema: {path_text}: {error.message}")
    except kubernetes_validate.SchemaNotFoundError as error:
        ctx.problem(where, f"schema: {error.message}")
    except Exception as error:
        ctx.problem(where, f"schema: cannot validate: {error}")


def check_config_objects(ctx: Context, manifests: Manifests) -> tuple[ConfigMaps, Secrets]:
    configmaps = {d["metadata"]["name"]: {str(k): str(v) for k, v in (d.get("data") or {}).items()}
                  for _, d in manifests.of_kind("ConfigMap")}
    secrets: dict[str, set[str]] = {}
    for where, doc in manifests.of_kind("Secret"):
        if "example" not in where.split(":")[0].rsplit("/", 1)[-1]:
            ctx.problem(where, "a Secret with values is committed; keep only *example* "
                        "files (and create the real Secret out of band)")
        secrets[doc["metadata"]["name"]] = set(doc.get("data") or {}) | set(doc.get("stringData") or {})
        for key, value in (doc.get("stringData") or {}).items():
            if key.endswith("db-url") and not str(value).startswith("postgresql://"):
                ctx.problem(where, f"{key} is not a postgresql:// URL")
    for where, doc in manifests.of_kind("ConfigMap"):
        for key in doc.get("data") or {}:
            if key in SECRET_ENV:
                ctx.problem(where, f"{key} is a secret: use a Secret and secretKeyRef")
    namespaces = {(d.get("metadata") or {}).get("namespace") for _, d in manifests.objects
                  if d.get("kind") != "Namespace"}
    if len(namespaces) > 1:
        ctx.problem(K8S_DIR, f"objects spread over namespaces {sorted(map(str, namespaces))}")
    return configmaps, secrets


def check_deployments(ctx: Context, manifests: Manifests, configmaps: ConfigMaps, secrets: Secrets) -> Workloads:
    workloads: Workloads = {}
    modules: list[str | None] = []
    for where, doc in manifests.of_kind("Deployment"):
        spec = doc.get("spec") or {}
        template = spec.get("template") or {}
        replicas = spec.get("replicas", 1)
        labels = (template.get("metadata") or {}).get("labels") or {}
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            ctx.problem(where, "spec.selector does not match the pod template labels")
        workloads[doc["metadata"]["name"]] = (where, labels, int(replicas))
        for container in check_pod(ctx, where, template.get("spec") or {}, configmaps, secrets):
            if not container.serves:
                continue
            modules.append(container.module)
            if replicas < MIN_SERVICE_REPLICAS:
                ctx.problem(where, f"replicas {replicas} < {MIN_SERVICE_REPLICAS}")
            if replicas > ctx.partitions:
                ctx.problem(where, f"replicas {replicas} > {ctx.partitions} partitions")
    for module in SERVICE_PORT_ENV:
        if modules.count(module) != 1:
            ctx.problem(K8S_DIR, f"{modules.count(module)} Deployments run python -m {module}, one wanted")
    return workloads


def check_topic_jobs(ctx: Context, manifests: Manifests, configmaps: ConfigMaps, secrets: Secrets) -> None:
    jobs = 0
    for where, doc in manifests.of_kind("Job"):
        template = (doc.get("spec") or {}).get("template") or {}
        for container in check_pod(ctx, where, template.get("spec") or {}, configmaps, secrets):
            if container.module != PROVISION_MODULE:
                continue
            jobs += 1
            check_topic_settings(ctx, where, container.env)
            for name in PROVISION_ENV[:3]:
                compose_value = ctx.compose_topic_settings.get(name)
                if name not in container.env:
                    ctx.problem(where, f"{name} is not set on the topic job")
                elif compose_value is not None and container.env[name] != compose_value:
                    ctx.problem(where, f"{name}={container.env[name]} differs from the compose job ({compose_value})")
    if jobs != 1:
        ctx.problem(K8S_DIR, f"{jobs} Jobs run python -m {PROVISION_MODULE}, one wanted")


def check_hpas(ctx: Context, manifests: Manifests, workloads: Workloads) -> None:
    for where, doc in manifests.of_kind("HorizontalPodAutoscaler"):
        spec = doc.get("spec") or {}
        target = spec.get("scaleTargetRef") or {}
        if target.get("kind") != "Deployment" or target.get("name") not in workloads:
            ctx.problem(where, f"scaleTargetRef {target.get('kind')}/{target.get('name')} is not a Deployment here")
        if int(spec.get("maxReplicas", 0)) > ctx.partitions:
            ctx.problem(where, f"maxReplicas {spec.get('maxReplicas')} > {ctx.partitions} "
                        "partitions (extra consumers would sit idle)")
        if int(spec.get("minReplicas", 1)) < MIN_SERVICE_REPLICAS:
            ctx.problem(where, f"minReplicas < {MIN_SERVICE_REPLICAS}")


def container_ports(manifests: Manifests) -> dict[str, dict[str, int]]:
    """Deployment name -> its container ports (name or number -> number)."""
    found: dict[str, dict[str, int]] = {}
    for _, doc in manifests.of_kind("Deployment"):
        pod = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
        found[doc["metadata"]["name"]] = {
            str(port.get("name", port.get("containerPort"))): int(port.get("containerPort", 0))
            for container in pod.get("containers") or [] for port in container.get("ports") or []
        }
    return found


def matching(workloads: Workloads, selector: Mapping[str, Any]) -> list[str]:
    return [name for name, (_, labels, _) in workloads.items()
            if selector and all(labels.get(k) == v for k, v in selector.items())]


def check_selectors(ctx: Context, manifests: Manifests, workloads: Workloads) -> None:
    ports = container_ports(manifests)
    for where, doc in manifests.of_kind("Service"):
        spec = doc.get("spec") or {}
        targets = matching(workloads, spec.get("selector") or {})
        if not targets:
            ctx.problem(where, "selector matches no Deployment")
            continue
        for port in spec.get("ports") or []:
            target, known = port.get("targetPort", port.get("port")), ports.get(targets[0], {})
            if str(target) not in known and target not in known.values():
                ctx.problem(where, f"targetPort {target} is no container port of {targets[0]}")
    covered: set[str] = set()
    for where, doc in manifests.of_kind("PodDisruptionBudget"):
        spec = doc.get("spec") or {}
        targets = matching(workloads, (spec.get("selector") or {}).get("matchLabels") or {})
        if not targets:
            ctx.problem(where, "selector matches no Deployment")
            continue
        covered.update(targets)
        replicas, min_available = workloads[targets[0]][2], spec.get("minAvailable")
        if isinstance(min_available, int) and min_available >= replicas:
            ctx.problem(where, f"minAvailable {min_available} >= replicas {replicas}: no node could ever be drained")
    for name, (where, _, _) in workloads.items():
        if name not in covered:
            ctx.problem(where, "no PodDisruptionBudget covers this Deployment")


def check_kustomizations(ctx: Context, manifests: Manifests) -> None:
    for path, doc in manifests.kustomizations:
        rel = ctx.rel(path)
        listed = {(path.parent / str(r)).resolve() for r in doc.get("resources") or []}
        for resource in sorted(listed):
            if not resource.exists():
                ctx.problem(rel, f"resource {ctx.rel(resource)} does not exist")
        for file in manifests.files:
            if file == path or file.parent != path.parent:
                continue
            if "example" in file.name and file.resolve() in listed:
                ctx.problem(rel, f"lists the example {ctx.rel(file)}")
            elif "example" not in file.name and file.resolve() not in listed:
                ctx.problem(rel, f"does not list {ctx.rel(file)}")
        for entry in doc.get("images") or []:
            tag = entry.get("newTag")
            if tag is not None and ctx.project_version and str(tag) != ctx.project_version:
                ctx.problem(rel, f"images: newTag {tag} is not the project version {ctx.project_version}")
