"""Static check of the production topology: ``python -m deploy.check [ROOT]`` (make deploy-check).

Reads, without Docker or a cluster (one module per target under ``deploy/checks/``):

- ``deploy/Dockerfile``: multi-stage, pinned base images, a non-root user, the default
  entry point, constraints used by ``pip install``, COPY sources present;
- ``deploy/compose.yaml``: images or builds, pinned images, health checks, ``depends_on``
  targets, secrets required from the shell with no default, the application services built
  from ``deploy/Dockerfile`` with their whole environment, a 3-broker KRaft cluster, the
  topic job, PostgreSQL and the mail sink they point at;
- every manifest under ``deploy/k8s``, validated against the Kubernetes schemas of
  ``kubernetes-validate`` (strict), then cross-checked: images, entry points, environment,
  probes, ports, resources, replicas versus partitions, PDBs, HPAs, Services, the topic Job
  and the kustomization;
- the topic list of ``deploy/provision_topics.py`` against ``docs/ARCHITECTURE.md``;
- ``deploy/observability``: alert rules (promtool when installed, else a PromQL parser),
  dashboards, runbook links, and every metric they name against what /metrics exposes.

The variable names come from each service's configuration reader
(``services.<name>.config.Settings.variables()``), not from a list here.
Prints one line per problem, then ``deploy-check: N manifests, 1 compose file, P problems``;
exits 1 when there is a problem.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from deploy.checks.common import KUBERNETES_VERSION, Context, Result, interpolate
from deploy.checks.compose import check_compose
from deploy.checks.dockerfile import check_dockerfile
from deploy.checks.kubernetes import check_kubernetes
from deploy.checks.observability import check_observability
from deploy.checks.project import check_project, check_topics
from deploy.checks.variables import known_variables

__all__ = ["KUBERNETES_VERSION", "Result", "interpolate", "main", "run_check"]


def run_check(root: Path, kubernetes_version: str = KUBERNETES_VERSION) -> Result:
    """Check the topology under ``root`` (the repository root); never raises on bad files."""
    ctx = Context(root.resolve(), kubernetes_version)
    ctx.known_env = known_variables(ctx)
    check_project(ctx)
    check_topics(ctx)
    check_dockerfile(ctx)  # before compose and Kubernetes: they read its default CMD
    check_compose(ctx)  # before Kubernetes: it learns the application image and topic settings
    check_kubernetes(ctx)
    check_observability(ctx)  # rules, dashboards and their ConfigMaps, against /metrics
    return ctx.result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.check", description="Check the production topology files.")
    parser.add_argument("root", nargs="?", default=str(Path(__file__).resolve().parent.parent),
                        help="repository root (default: this checkout)")
    parser.add_argument("--kubernetes-version", default=KUBERNETES_VERSION,
                        help=f"schemas to validate against (default {KUBERNETES_VERSION})")
    args = parser.parse_args(argv)
    result = run_check(Path(args.root), args.kubernetes_version)
    for line in result.problems:
        print(line)
    print(result.summary())
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
