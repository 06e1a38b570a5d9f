"""The observability pack as data: alert rules, the Grafana dashboard, the Prometheus,
Alertmanager and compose files, and the metric names their PromQL expressions use, for
comparison with the README's metrics table and with a live `/metrics`."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.support.docs import histogram_series, readme_metrics
from tests.support.paths import ROOT

REPO = ROOT
PROMETHEUS_DIR = REPO / "prometheus"
ALERTS_FILE = PROMETHEUS_DIR / "alerts.yml"
RULES_FILE = PROMETHEUS_DIR / "rules.yml"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTMANAGER_CONFIG = REPO / "alertmanager" / "alertmanager.yml"
GRAFANA_DIR = REPO / "grafana"
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "claude-usage.json"
DATASOURCE_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDER_FILE = GRAFANA_DIR / "provisioning" / "dashboards" / "monitor.yml"
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
ALERTS_DOC = REPO / "docs" / "alerts.md"

JOB = "claude-monitor"
DASHBOARD_UID = "claude-usage"
DATASOURCE_REF = "${datasource}"


# Series Prometheus makes itself.
PROMETHEUS_METRICS = frozenset({"up", "ALERTS"})

# Grafana variables, replaced by valid values before an expression is parsed.
GRAFANA_VARIABLES = {
    "org": "acme",
    "__rate_interval": "2m",
    "__interval": "1m",
    "__range": "1h",
    "__range_s": "3600",
}

ALL_INTERFACES = "0.0.0.0"  # what the containers listen on

PROMTOOL_HINT = "apt-get install prometheus"
AMTOOL_HINT = "apt-get install prometheus-alertmanager"
COMPOSE_HINT = "apt-get install docker-compose"


def run(args: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def assert_ok(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(result.args)} exited {result.returncode}:\n{output}"
    return output


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@cache
def alert_rules() -> tuple[dict[str, Any], ...]:
    groups = load_yaml(ALERTS_FILE)["groups"]
    return tuple(rule for group in groups for rule in group["rules"])


@cache
def recording_rules() -> tuple[dict[str, Any], ...]:
    groups = load_yaml(RULES_FILE)["groups"]
    return tuple(rule for group in groups for rule in group["rules"])


def recorded_names() -> frozenset[str]:
    """The series the recording rules make (`claude_usage:pace_ratio`, ...)."""
    return frozenset(rule["record"] for rule in recording_rules())


@cache
def dashboard() -> dict[str, Any]:
    board: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    return board


def panels() -> list[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    out: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


@cache
def compose() -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(COMPOSE_FILE)
    return document


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of a JSON document, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS_DIR.glob("*.yml"))


def rule(name: str) -> dict[str, Any]:
    (found,) = (r for r in alert_rules() if r.get("alert") == name)
    return found


def expand_grafana_variables(expr: str) -> str:
    """Replace $var, ${var} and ${var:format} by a valid value (GRAFANA_VARIABLES)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in GRAFANA_VARIABLES:
            raise KeyError(f"unknown Grafana variable ${name} in {expr!r}")
        return GRAFANA_VARIABLES[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", value, expr)


def dashboard_expressions() -> list[tuple[str, str]]:
    """(where, expr) of every PromQL query of the dashboard, Grafana variables as written."""
    queries = [
        (f"panel {panel['title']!r} {target['refId']}", target["expr"])
        for panel in panels()
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
    annotations = [
        (f"annotation {annotation['name']!r}", annotation["expr"])
        for annotation in dashboard().get("annotations", {}).get("list", [])
        if annotation.get("expr")
    ]
    return queries + annotations


def alert_expressions() -> list[tuple[str, str]]:
    return [(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()]


def recording_expressions() -> list[tuple[str, str]]:
    return [(f"recording rule {rule['record']}", rule["expr"]) for rule in recording_rules()]


def promql_expressions() -> list[tuple[str, str]]:
    """(where, expr) of every PromQL expression of the recording rules, the alerts and the
    dashboard, with Grafana variables replaced, ready for a PromQL parser."""
    return (
        recording_expressions()
        + alert_expressions()
        + [(where, expand_grafana_variables(expr)) for where, expr in dashboard_expressions()]
    )


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:]|\s*\()")
_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "bool",
        "atan2",
        "inf",
        "nan",
    }
)


def metric_names_in_expression(expr: str) -> set[str]:
    """Metric names selected by one PromQL expression (not function names, keywords,
    label names, strings, numbers or durations)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return {
        name
        for name in _IDENTIFIER.findall(text)
        if name.lower() not in _KEYWORDS and not name.startswith("$")
    }


def metric_names_in_expressions() -> set[str]:
    """Every metric name the alert rules and the dashboard (queries, annotations and
    the `org` variable) use, e.g. `claude_proxy_request_duration_seconds_bucket`."""
    names: set[str] = set()
    for _, expr in promql_expressions():
        names |= metric_names_in_expression(expr)
    for variable in dashboard()["templating"]["list"]:
        match = re.match(r"label_values\(\s*(\w+)", variable.get("definition", ""))
        if match:
            names.add(match.group(1))
    return names


def documented_metric(name: str) -> str | None:
    """The README metric a series name belongs to (a histogram's series are its _bucket,
    _sum and _count), or None."""
    documented = readme_metrics()
    if name in documented:
        return name
    for metric in documented.values():
        if metric.type == "histogram" and name in histogram_series(metric.name):
            return metric.name
    return None


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def parse_volume(spec: str) -> tuple[str, str, str]:
    source, target, *mode = spec.split(":")
    return source, target, mode[0] if mode else "rw"
