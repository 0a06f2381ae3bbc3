"""``deploy/observability``: the Prometheus alert rules, the Grafana dashboards and the
Kubernetes ConfigMaps made of them.

- Rules: the YAML structure Prometheus loads (groups, rules, `for`, labels, annotations), each
  alert with a `runbook_url` naming a section of docs/RUNBOOK.md that exists; each expression
  well-formed PromQL, by ``promtool check rules`` when it is installed (Debian's prometheus
  package) and always by the small parser below.
- Dashboards: JSON with a uid, a title and panels whose targets are well-formed PromQL.
- Every metric a rule or a panel names is one the services expose on /metrics (the metrics
  the services define, as prometheus_client names their samples).
- ``deploy/k8s/observability.yaml`` is what ``python -m deploy.checks.observability --write``
  renders from these files (the rules and dashboards are edited here, never there).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deploy.checks.common import Context

OBSERVABILITY_DIR = "deploy/observability"
RULES_FILE = f"{OBSERVABILITY_DIR}/alerts.yaml"
RUNBOOK = "docs/RUNBOOK.md"
K8S_FILE = "deploy/k8s/observability.yaml"
NAMESPACE = "partner-portal"
# Modules that define the services' metrics (prometheus_client registers them on import).
METRIC_MODULES = ("events.metrics",)
REQUIRED_ALERTS = frozenset({
    "PortalConsumerLagGrowing", "PortalProjectionLagHigh", "PortalDeadLettersArriving", "PortalEmailsFailing",
    "PortalOutboxBacklog", "PortalReadinessFlapping", "PortalLeaderMissing",
})
_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


def check_observability(ctx: Context) -> None:
    base = ctx.root / OBSERVABILITY_DIR
    if not base.is_dir():
        ctx.problem(OBSERVABILITY_DIR, "missing")
        return
    known = exposed_metrics()
    anchors = runbook_anchors(ctx.root / RUNBOOK)
    rules = base / "alerts.yaml"
    if not rules.is_file():
        ctx.problem(RULES_FILE, "missing")
    else:
        check_rules_file(ctx, rules, known, anchors)
    dashboards = sorted(base.glob("*.json"))
    if not dashboards:
        ctx.problem(OBSERVABILITY_DIR, "no Grafana dashboard (*.json)")
    for path in dashboards:
        check_dashboard(ctx, path, known)
    for path in sorted(base.rglob("*.y*ml")):
        if path != rules:
            check_yaml_file(ctx, path)
    check_rendered_k8s(ctx)


# --- rules ------------------------------------------------------------------------------------


def check_rules_file(ctx: Context, path: Path, known: frozenset[str], anchors: frozenset[str]) -> None:
    where = ctx.rel(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        ctx.problem(where, f"not valid YAML: {error}")
        return
    promtool_check(ctx, path)
    groups = doc.get("groups") if isinstance(doc, dict) else None
    if not isinstance(groups, list) or not groups:
        ctx.problem(where, "no `groups:` list")
        return
    alerts: set[str] = set()
    group_names: set[str] = set()
    for index, group in enumerate(groups):
        if not isinstance(group, dict) or not isinstance(group.get("name"), str):
            ctx.problem(f"{where}: group {index + 1}", "not a mapping with a name")
            continue
        if group["name"] in group_names:
            ctx.problem(f"{where}: group {group['name']}", "the name is used twice")
        group_names.add(group["name"])
        unknown = set(group) - {"name", "interval", "rules", "limit", "query_offset", "labels"}
        if unknown:
            ctx.problem(f"{where}: group {group['name']}", f"unknown fields {sorted(unknown)}")
        for rule in group.get("rules") or []:
            name = check_rule(ctx, f"{where}: group {group['name']}", rule, known, anchors)
            if name is not None:
                alerts.add(name)
    for missing in sorted(REQUIRED_ALERTS - alerts):
        ctx.problem(where, f"no alert {missing}")


def check_rule(ctx: Context, where: str, rule: Any, known: frozenset[str], anchors: frozenset[str]) -> str | None:
    if not isinstance(rule, dict):
        ctx.problem(where, "a rule that is not a mapping")
        return None
    name = rule.get("alert") or rule.get("record")
    where = f"{where}: {name or '?'}"
    if ("alert" in rule) == ("record" in rule):
        ctx.problem(where, "a rule has exactly one of `alert:` and `record:`")
    unknown = set(rule) - {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
    if unknown:
        ctx.problem(where, f"unknown fields {sorted(unknown)}")
    expr = rule.get("expr")
    if not isinstance(expr, str) or not expr.strip():
        ctx.problem(where, "no `expr:`")
    else:
        check_expression(ctx, where, expr, known)
    for key in ("for", "keep_firing_for"):
        if key in rule and not _DURATION.match(str(rule[key])):
            ctx.problem(where, f"{key}: {rule[key]!r} is not a duration (e.g. 5m)")
    for key in ("labels", "annotations"):
        values = rule.get(key, {})
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            ctx.problem(where, f"{key}: not a mapping of strings")
    if "alert" in rule:
        given = rule.get("annotations")
        annotations: dict[str, Any] = given if isinstance(given, dict) else {}
        check_runbook_url(ctx, where, annotations.get("runbook_url"), anchors)
        if not isinstance(annotations.get("summary"), str):
            ctx.problem(where, "no summary annotation")
    return str(rule["alert"]) if "alert" in rule else None


def check_runbook_url(ctx: Context, where: str, url: Any, anchors: frozenset[str]) -> None:
    if not isinstance(url, str):
        ctx.problem(where, "no runbook_url annotation")
        return
    path, _, anchor = url.partition("#")
    if path != RUNBOOK or not anchor:
        ctx.problem(where, f"runbook_url {url!r} is not {RUNBOOK}#<section>")
    elif anchor not in anchors:
        ctx.problem(where, f"runbook_url {url!r}: {RUNBOOK} has no section with that anchor")


def runbook_anchors(path: Path) -> frozenset[str]:
    """The anchors a Markdown renderer gives the headings (GitHub's rule: lower case, spaces
    to hyphens, punctuation dropped; a repeated heading gets -1, -2...)."""
    if not path.is_file():
        return frozenset()
    seen: dict[str, int] = {}
    anchors = set()
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(anchors)


def promtool_check(ctx: Context, path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        return  # the parser below still checks every expression
    try:
        done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        ctx.problem(ctx.rel(path), f"promtool could not run: {error}")
        return
    if done.returncode != 0:
        for line in (done.stdout + done.stderr).splitlines():
            if line.strip() and "SUCCESS" not in line and not line.startswith("Checking"):
                ctx.problem(ctx.rel(path), f"promtool: {line.strip()}")


def check_expression(ctx: Context, where: str, expr: str, known: frozenset[str]) -> None:
    try:
        names = PromQL(expr).metric_names()
    except PromQLError as error:
        ctx.problem(where, f"PromQL: {error}")
        return
    if not names:
        ctx.problem(where, "the expression names no metric")
    for name in sorted(names - known):
        ctx.problem(where, f"metric {name} is not exposed by the services' /metrics")


# --- dashboards -------------------------------------------------------------------------------


def check_dashboard(ctx: Context, path: Path, known: frozenset[str]) -> None:
    where = ctx.rel(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        ctx.problem(where, f"not valid JSON: {error}")
        return
    if not isinstance(doc, dict) or not doc.get("uid") or not doc.get("title"):
        ctx.problem(where, "a dashboard has a uid and a title")
        return
    panels = list(_panels(doc.get("panels") or []))
    if not panels:
        ctx.problem(where, "no panels")
    for panel in panels:
        targets = [t for t in panel.get("targets") or [] if isinstance(t, dict)]
        if panel.get("type") != "row" and not targets:
            ctx.problem(f"{where}: panel {panel.get('title')!r}", "no query")
        for target in targets:
            expr = target.get("expr")
            if not isinstance(expr, str):
                ctx.problem(f"{where}: panel {panel.get('title')!r}", "a target without `expr`")
                continue
            check_expression(ctx, f"{where}: panel {panel.get('title')!r}", expr, known)


def _panels(panels: Iterable[Any]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        if isinstance(panel, dict):
            yield panel
            yield from _panels(panel.get("panels") or [])  # a collapsed row holds its panels


def check_yaml_file(ctx: Context, path: Path) -> None:
    try:
        list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except yaml.YAMLError as error:
        ctx.problem(ctx.rel(path), f"not valid YAML: {error}")


# --- what /metrics exposes --------------------------------------------------------------------


def exposed_metrics(modules: Iterable[str] = METRIC_MODULES) -> frozenset[str]:
    """The sample names of every metric the services define, as /metrics shows them
    (a counter `x` as `x_total` and `x_created`, a histogram as `x_bucket`, `x_sum`...)."""
    import importlib

    from prometheus_client import REGISTRY

    for module in modules:
        importlib.import_module(module)
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                "summary": ("", "_count", "_sum", "_created"), "gauge": ("",), "info": ("_info",)}
    names: set[str] = set()
    for family in REGISTRY.collect():
        for suffix in suffixes.get(family.type, ("",)):
            names.add(family.name + suffix)
    return frozenset(names)


# --- the Kubernetes ConfigMaps ----------------------------------------------------------------


def render_k8s(root: Path) -> str:
    """The ConfigMaps (rules for Prometheus, dashboards for Grafana's sidecar) as one file."""
    base = root / OBSERVABILITY_DIR
    rules = {"alerts.yaml": (base / "alerts.yaml").read_text(encoding="utf-8")}
    dashboards = {p.name: p.read_text(encoding="utf-8") for p in sorted(base.glob("*.json"))}
    docs = [
        _configmap("portal-prometheus-rules", {"prometheus_rule": "1"}, rules),
        _configmap("portal-grafana-dashboards", {"grafana_dashboard": "1"}, dashboards),
    ]
    header = (f"# Generated from {OBSERVABILITY_DIR}/ by `python -m deploy.checks.observability --write`;\n"
              "# edit those files, not this one (make deploy-check says when it is out of date).\n")
    return header + yaml.safe_dump_all(docs, sort_keys=False, width=200)


def _configmap(name: str, labels: dict[str, str], data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app.kubernetes.io/part-of": "partner-portal",
                                                                          **labels}},
            "data": data}


def check_rendered_k8s(ctx: Context) -> None:
    path = ctx.root / K8S_FILE
    try:
        expected = render_k8s(ctx.root)
    except OSError as error:
        ctx.problem(K8S_FILE, f"cannot render: {error}")
        return
    if not path.is_file():
        ctx.problem(K8S_FILE, "missing: python -m deploy.checks.observability --write")
    elif path.read_text(encoding="utf-8") != expected:
        ctx.problem(K8S_FILE, f"differs from {OBSERVABILITY_DIR}/: python -m deploy.checks.observability --write")


# --- PromQL -----------------------------------------------------------------------------------


class PromQLError(ValueError):
    pass


AGGREGATIONS = frozenset({
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
    "quantile", "limitk", "limit_ratio",
})
FUNCTIONS = frozenset({
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "day_of_month",
    "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp", "floor", "histogram_avg",
    "histogram_count", "histogram_fraction", "histogram_quantile", "histogram_stddev", "histogram_stdvar",
    "histogram_sum", "holt_winters", "double_exponential_smoothing", "hour", "idelta", "increase", "irate",
    "label_join", "label_replace", "ln", "log2", "log10", "minute", "month", "predict_linear", "rate",
    "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sort_by_label", "sort_by_label_desc", "sqrt",
    "time", "timestamp", "vector", "year", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time",
    "count_over_time", "quantile_over_time", "stddev_over_time", "stdvar_over_time", "last_over_time",
    "present_over_time", "mad_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh", "cos", "cosh",
    "deg", "pi", "rad", "sin", "sinh", "tan", "tanh",
})
BINARY = ("==", "!=", ">=", "<=", ">", "<", "+", "-", "*", "/", "%", "^", "and", "or", "unless", "atan2")
_TOKEN = re.compile(r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<duration>(?:\d+(?:ms|s|m|h|d|w|y))+(?![\w]))
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|0x[0-9a-fA-F]+|[Ii]nf|NaN)
  | (?P<variable>\$\w+|\$\{[^}]+\}|\[\[\w+\]\])
  | (?P<ident>[a-zA-Z_:][\w:]*)
  | (?P<op>==|!=|>=|<=|=~|!~|[-+*/%^<>=(){}\[\],:@])
""", re.VERBOSE)


@dataclass
class PromQL:
    """A recursive-descent reader of a PromQL expression: enough to say it is well formed
    (balanced, known functions, selectors, ranges, aggregations, binary operators with their
    modifiers) and which metrics it names. Grafana's `$variables` stand for durations or values."""

    text: str
    tokens: list[tuple[str, str]] = field(default_factory=list)
    pos: int = 0
    names: set[str] = field(default_factory=set)

    def metric_names(self) -> set[str]:
        self.tokens = self._tokenize()
        self.pos = 0
        self._expr(0)
        if self.pos != len(self.tokens):
            raise PromQLError(f"unexpected {self._peek()[1]!r}")
        return self.names

    def _tokenize(self) -> list[tuple[str, str]]:
        tokens, at = [], 0
        while at < len(self.text):
            match = _TOKEN.match(self.text, at)
            if match is None:
                raise PromQLError(f"cannot read {self.text[at:at + 10]!r}")
            kind = match.lastgroup or ""
            if kind != "space":
                tokens.append((kind, match.group()))
            at = match.end()
        return tokens

    def _peek(self, ahead: int = 0) -> tuple[str, str]:
        at = self.pos + ahead
        return self.tokens[at] if at < len(self.tokens) else ("end", "end of expression")

    def _take(self, value: str | None = None, kind: str | None = None) -> str:
        got_kind, got = self._peek()
        if (value is not None and got != value) or (kind is not None and got_kind != kind):
            raise PromQLError(f"expected {value or kind}, found {got!r}")
        self.pos += 1
        return got

    def _binary_op(self) -> str | None:
        kind, value = self._peek()
        if (kind == "op" and value in BINARY) or (kind == "ident" and value in ("and", "or", "unless", "atan2")):
            return value
        return None

    def _expr(self, min_precedence: int) -> None:
        self._unary()
        while (op := self._binary_op()) is not None and _precedence(op) >= min_precedence:
            self.pos += 1
            if self._peek()[1] == "bool":
                self.pos += 1
            if self._peek()[1] in ("on", "ignoring"):
                self.pos += 1
                self._labels()
            if self._peek()[1] in ("group_left", "group_right"):
                self.pos += 1
                if self._peek()[1] == "(":
                    self._labels()
            self._expr(_precedence(op) + (0 if op == "^" else 1))

    def _unary(self) -> None:
        if self._peek()[1] in ("-", "+"):
            self.pos += 1
        self._postfix()

    def _postfix(self) -> None:
        self._primary()
        while True:
            if self._peek()[1] == "[":
                self.pos += 1
                self._duration()
                if self._peek()[1] == ":":  # a subquery
                    self.pos += 1
                    if self._peek()[1] != "]":
                        self._duration()
                self._take("]")
            elif self._peek()[1] == "offset":
                self.pos += 1
                if self._peek()[1] == "-":
                    self.pos += 1
                self._duration()
            elif self._peek()[1] == "@":
                self.pos += 1
                if self._peek()[1] in ("start", "end"):
                    self.pos += 1
                    self._take("(")
                    self._take(")")
                else:
                    self._take(kind="number")
            else:
                return

    def _duration(self) -> None:
        kind, value = self._peek()
        if kind not in ("duration", "variable"):
            raise PromQLError(f"expected a duration, found {value!r}")
        self.pos += 1

    def _primary(self) -> None:
        kind, value = self._peek()
        if value == "(":
            self.pos += 1
            self._expr(0)
            self._take(")")
        elif kind in ("number", "string", "variable"):
            self.pos += 1
        elif value == "{":
            self._matchers(None)
        elif kind == "ident" and value in AGGREGATIONS:
            self._aggregation()
        elif kind == "ident" and self._peek(1)[1] == "(":
            if value not in FUNCTIONS:
                raise PromQLError(f"unknown function {value}()")
            self.pos += 1
            self._arguments()
        elif kind == "ident":
            self.pos += 1
            self.names.add(value)
            if self._peek()[1] == "{":
                self._matchers(value)
        else:
            raise PromQLError(f"unexpected {value!r}")

    def _aggregation(self) -> None:
        self.pos += 1
        if self._peek()[1] in ("by", "without"):
            self.pos += 1
            self._labels()
            self._arguments()
        else:
            self._arguments()
            if self._peek()[1] in ("by", "without"):
                self.pos += 1
                self._labels()

    def _arguments(self) -> None:
        self._take("(")
        if self._peek()[1] != ")":
            self._expr(0)
            while self._peek()[1] == ",":
                self.pos += 1
                self._expr(0)
        self._take(")")

    def _labels(self) -> None:
        self._take("(")
        while self._peek()[1] != ")":
            self._take(kind="ident")
            if self._peek()[1] != ",":
                break
            self.pos += 1
        self._take(")")

    def _matchers(self, metric: str | None) -> None:
        self._take("{")
        while self._peek()[1] != "}":
            kind, label = self._peek()
            if kind == "string" and metric is None:  # {"metric.name"}: the quoted name form
                self.pos += 1
                self.names.add(label[1:-1])
            else:
                self._take(kind="ident")
                if self._peek()[1] not in ("=", "!=", "=~", "!~"):
                    raise PromQLError(f"expected a label matcher after {label}, found {self._peek()[1]!r}")
                self.pos += 1
                value_kind, value = self._peek()
                if value_kind not in ("string", "variable"):
                    raise PromQLError(f"label {label}: expected a quoted value, found {value!r}")
                self.pos += 1
                if label == "__name__" and value_kind == "string":
                    self.names.add(value[1:-1])
            if self._peek()[1] != ",":
                break
            self.pos += 1
        self._take("}")


def _precedence(op: str) -> int:
    for level, ops in enumerate((("or",), ("and", "unless"), ("==", "!=", "<=", "<", ">=", ">"), ("+", "-"),
                                 ("*", "/", "%", "atan2"), ("^",))):
        if op in ops:
            return level + 1
    raise PromQLError(f"unknown operator {op}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.checks.observability",
                                     description=f"Render {K8S_FILE} from {OBSERVABILITY_DIR}/.")
    parser.add_argument("--write", action="store_true", help=f"write {K8S_FILE}")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parents[2]
    text = render_k8s(root)
    if args.write:
        (root / K8S_FILE).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
