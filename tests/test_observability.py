"""The observability pack: alert rules, Prometheus/Alertmanager configs, the Grafana
dashboard and provisioning, and docker-compose.yml (the Dockerfile: tests/test_deploy.py).

Real tools check what they can (`promtool`, `amtool`, `docker-compose`). A test that
needs a missing tool is skipped, unless MONITOR_REQUIRE_TOOLS=1 (as in CI), where it
fails instead.

`metric_names_in_expressions()` lists every metric name the alerts and the dashboard
query, for comparison with the SPEC's metric list here and with a live `/metrics`
elsewhere.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.tools import require_tool
from tests.support.upstream import USAGE_SERIES

REPO = Path(__file__).resolve().parent.parent
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
ALERTS_DOC = REPO / "docs" / "alerts.md"

JOB = "claude-monitor"
DASHBOARD_UID = "claude-usage"
DATASOURCE_REF = "${datasource}"

# SPEC section 4.
SPEC_METRICS = frozenset(
    {
        *USAGE_SERIES,
        "claude_proxy_requests_total",
        "claude_proxy_request_duration_seconds",
        "claude_monitor_build_info",
        "claude_usage_credential_expires_timestamp_seconds",
        "claude_usage_credential_reloads_total",
    }
)
SPEC_HISTOGRAMS = frozenset({"claude_proxy_request_duration_seconds"})
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


# --------------------------------------------------------------------------------------
# Loading the files
# --------------------------------------------------------------------------------------


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


@cache
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))


def panels() -> list[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    out: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


@cache
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of a JSON document, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


# --------------------------------------------------------------------------------------
# PromQL expressions and the metric names in them
# --------------------------------------------------------------------------------------


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
    out: list[tuple[str, str]] = []
    for panel in panels():
        for target in panel.get("targets", []):
            if target.get("expr"):
                out.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for annotation in dashboard().get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            out.append((f"annotation {annotation['name']!r}", annotation["expr"]))
    return out


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


def recorded_names() -> frozenset[str]:
    """The series the recording rules make (`claude_usage:pace_ratio`, ...)."""
    return frozenset(rule["record"] for rule in recording_rules())


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


def spec_metric(name: str) -> str | None:
    """The SPEC metric a series name belongs to (histograms have _bucket/_sum/_count
    series), or None."""
    if name in SPEC_METRICS:
        return name
    for histogram in SPEC_HISTOGRAMS:
        if name in {f"{histogram}_bucket", f"{histogram}_sum", f"{histogram}_count"}:
            return histogram
    return None


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('claude_usage_up{org=~"acme|globex"} == 0', {"claude_usage_up"}),
        (
            "sum by (org, result) (increase(claude_usage_polls_total[5m] offset 1h)) > 1e3",
            {"claude_usage_polls_total"},
        ),
        (
            "histogram_quantile(0.9, sum without (instance) (rate(x_bucket[2m]))) "
            "and on (org) group_left (window) y unless z",
            {"x_bucket", "y", "z"},
        ),
        ('absent(up{job="a{b}"}) or vector(0)', {"up"}),
        ("time() - last_success", {"last_success"}),
    ],
)
def test_metric_name_extraction(expr: str, names: set[str]) -> None:
    assert metric_names_in_expression(expr) == names


def test_grafana_variables_are_expanded() -> None:
    assert (
        expand_grafana_variables('rate(x{org=~"$org"}[$__rate_interval]) + y{org="${org:regex}"}')
        == 'rate(x{org=~"acme"}[2m]) + y{org="acme"}'
    )
    with pytest.raises(KeyError):
        expand_grafana_variables("x{a=~'$nope'}")


def test_every_metric_used_is_in_the_spec() -> None:
    names = metric_names_in_expressions()
    unknown = {name for name in names if spec_metric(name) is None}
    unknown -= PROMETHEUS_METRICS | recorded_names()
    assert not unknown, f"metrics not in SPEC section 4: {sorted(unknown)}"


def test_every_spec_metric_is_shown_or_alerted_on() -> None:
    used = {spec_metric(name) for name in metric_names_in_expressions()}
    assert SPEC_METRICS - used == set()


@pytest.mark.tool
def test_every_expression_parses(tmp_path: Path) -> None:
    """promtool has no expression parser on every version: check each expression as a
    recording rule."""
    promtool = require_tool("promtool", PROMTOOL_HINT)
    expressions = promql_expressions()
    assert len(expressions) > 20
    for where, expr in expressions:
        assert "$" not in expr, f"{where}: unexpanded variable in {expr!r}"
    rules = {
        "groups": [
            {
                "name": "expressions",
                "rules": [
                    {"record": f"check:expression_{i}:{re.sub(r'[^a-z]+', '_', where.lower())}"}
                    | {"expr": expr}
                    for i, (where, expr) in enumerate(expressions)
                ],
            }
        ]
    }
    path = tmp_path / "expressions.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    output = assert_ok(run([promtool, "check", "rules", str(path)]))
    assert f"SUCCESS: {len(expressions)} rules found" in output


@pytest.mark.tool
def test_expression_check_catches_bad_promql(tmp_path: Path) -> None:
    """The recording-rule trick above does reject a broken expression."""
    promtool = require_tool("promtool", PROMTOOL_HINT)
    path = tmp_path / "bad.yml"
    bad = {"groups": [{"name": "g", "rules": [{"record": "r", "expr": "sum by (org (x)"}]}]}
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    assert run([promtool, "check", "rules", str(path)]).returncode != 0


# --------------------------------------------------------------------------------------
# Alert rules
# --------------------------------------------------------------------------------------

EXPECTED_ALERTS = {
    "ClaudeUsageWindowHigh": "warning",
    "ClaudeUsageWindowCritical": "critical",
    "ClaudeUsageWindowExhaustionPredicted": "warning",
    "ClaudeUsageOnPaceToExhaust": "warning",
    "ClaudeUsageExtraCreditsHigh": "warning",
    "ClaudeUsageCredentialRejected": "critical",
    "ClaudeUsageCredentialExpiringSoon": "warning",
    "ClaudeUsageRateLimited": "warning",
    "ClaudeUsageDataStale": "warning",
    "ClaudeUsageMonitorDown": "critical",
    "ClaudeUsageMonitorAbsent": "critical",
}


def rule(name: str) -> dict[str, Any]:
    (found,) = (r for r in alert_rules() if r.get("alert") == name)
    return found


def test_alert_names_and_severities() -> None:
    assert {r["alert"]: r["labels"]["severity"] for r in alert_rules()} == EXPECTED_ALERTS
    for r in alert_rules():
        assert re.fullmatch(r"ClaudeUsage(?:[A-Z][a-z]+)+", r["alert"]), r["alert"]


def test_only_the_95_percent_alert_matches_the_critical_pattern() -> None:
    critical = [r for r in alert_rules() if re.fullmatch(r"ClaudeUsage.*Critical", r["alert"])]
    assert [r["alert"] for r in critical] == ["ClaudeUsageWindowCritical"]
    assert re.search(r"claude_usage_utilization_ratio\s*>=\s*0\.95\b", critical[0]["expr"])
    assert re.search(
        r"claude_usage_utilization_ratio\s*>=\s*0\.80?\b", rule("ClaudeUsageWindowHigh")["expr"]
    )
    assert re.search(r">=\s*0\.90?\b", rule("ClaudeUsageExtraCreditsHigh")["expr"])


def test_alerts_fire_once_per_episode() -> None:
    """A `for:` on every rule, and labels that do not change with the value."""
    for r in alert_rules():
        assert re.fullmatch(r"\d+[mh]", str(r.get("for", ""))), f"{r['alert']}: no for:"
        assert set(r["labels"]) == {"severity"}, r["alert"]
        assert all("$value" not in str(v) for v in r["labels"].values())


def test_alert_annotations_name_the_org_and_window() -> None:
    for r in alert_rules():
        annotations = r["annotations"]
        assert set(annotations) >= {"summary", "description"}, r["alert"]
        text = annotations["summary"] + annotations["description"]
        if "claude_usage_" in r["expr"]:
            assert "$labels.org" in text, f"{r['alert']} does not name the org"
        if "Window" in r["alert"]:
            assert "$labels.window" in text, f"{r['alert']} does not name the window"
    rejected = rule("ClaudeUsageCredentialRejected")["annotations"]["description"]
    assert "Renew it where config.toml says it comes from" in rejected
    expiring = rule("ClaudeUsageCredentialExpiringSoon")["annotations"]
    assert "$labels.account" in expiring["summary"] + expiring["description"]


def test_credential_and_monitor_alerts_select_the_right_series() -> None:
    rejected = 'result=~"unauthorized|forbidden|credential_expired"'
    assert rejected in rule("ClaudeUsageCredentialRejected")["expr"]
    assert rule("ClaudeUsageCredentialExpiringSoon")["expr"].strip() == (
        "claude_usage_credential_expires_timestamp_seconds - time() < 1800"
    )
    assert 'result="rate_limited"' in rule("ClaudeUsageRateLimited")["expr"]
    assert rule("ClaudeUsageMonitorDown")["expr"].strip() == f'up{{job="{JOB}"}} == 0'
    assert rule("ClaudeUsageMonitorAbsent")["expr"].strip() == f'absent(up{{job="{JOB}"}})'
    trend = rule("ClaudeUsageWindowExhaustionPredicted")["expr"]
    assert "deriv(claude_usage_utilization_ratio[1h])" in trend
    assert "claude_usage_resets_at_timestamp_seconds - time()" in trend


def rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS_DIR.glob("*.yml"))


def test_every_alert_has_firing_and_quiet_unit_tests() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in rule_test_files():
        for test in load_yaml(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert firing >= set(EXPECTED_ALERTS), f"never tested firing: {set(EXPECTED_ALERTS) - firing}"
    assert quiet >= set(EXPECTED_ALERTS), f"never tested quiet: {set(EXPECTED_ALERTS) - quiet}"


def test_alerts_doc_lists_every_alert() -> None:
    rows = {}
    for line in ALERTS_DOC.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\|\s*`(ClaudeUsage\w+)`\s*\|[^|]+\|\s*(\w+)\s*\|[^|]+\|$", line)
        if match:
            rows[match.group(1)] = match.group(2)
    assert rows == EXPECTED_ALERTS


@pytest.mark.tool
def test_promtool_check_rules() -> None:
    promtool = require_tool("promtool", PROMTOOL_HINT)
    output = assert_ok(
        run([promtool, "check", "rules", "--lint=all", "--lint-fatal", str(ALERTS_FILE)])
    )
    assert f"SUCCESS: {len(alert_rules())} rules found" in output


@pytest.mark.tool
def test_promtool_test_rules() -> None:
    promtool = require_tool("promtool", PROMTOOL_HINT)
    files = rule_test_files()
    assert files
    # rule_files in a test file are relative to the test file: run from its directory.
    output = assert_ok(
        run([promtool, "test", "rules", *(p.name for p in files)], cwd=RULE_TESTS_DIR)
    )
    assert "FAILED" not in output
    assert output.count("SUCCESS") == len(files)


@pytest.mark.tool
def test_promtool_test_rules_catches_a_broken_threshold(tmp_path: Path) -> None:
    """The unit tests do pin the thresholds: at 70 % instead of 80 % they fail."""
    promtool = require_tool("promtool", PROMTOOL_HINT)
    alerts = ALERTS_FILE.read_text(encoding="utf-8")
    broken = alerts.replace(
        "claude_usage_utilization_ratio >= 0.80", "claude_usage_utilization_ratio >= 0.70"
    )
    assert broken != alerts
    (tmp_path / "alerts.yml").write_text(broken, encoding="utf-8")
    shutil.copytree(RULE_TESTS_DIR, tmp_path / "tests")
    result = run([promtool, "test", "rules", "alerts_test.yml"], cwd=tmp_path / "tests")
    assert result.returncode != 0
    assert "ClaudeUsageWindowHigh" in result.stdout + result.stderr


# --------------------------------------------------------------------------------------
# Prometheus and Alertmanager configuration
# --------------------------------------------------------------------------------------


def test_prometheus_config_scrapes_monitor_and_loads_the_rules() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    (job,) = (j for j in config["scrape_configs"] if j["job_name"] == JOB)
    assert job.get("scrape_interval", config["global"]["scrape_interval"]) == "30s"
    assert [t for sc in job["static_configs"] for t in sc["targets"]] == ["monitor:4000"]
    loaded = [
        (PROMETHEUS_CONFIG.parent / rule_file).resolve() for rule_file in config["rule_files"]
    ]
    assert loaded == [RULES_FILE, ALERTS_FILE]
    targets = [
        t
        for am in config["alerting"]["alertmanagers"]
        for sc in am["static_configs"]
        for t in sc["targets"]
    ]
    assert targets == ["alertmanager:9093"]


@pytest.mark.tool
def test_promtool_check_config() -> None:
    promtool = require_tool("promtool", PROMTOOL_HINT)
    # rule_files resolve against the config file's directory.
    output = assert_ok(
        run(
            [promtool, "check", "config", "--lint=all", "--lint-fatal", "prometheus.yml"],
            cwd=PROMETHEUS_DIR,
        )
    )
    assert "SUCCESS: 2 rule files found" in output


def test_alertmanager_routes_by_org_and_severity() -> None:
    config = load_yaml(ALERTMANAGER_CONFIG)
    route = config["route"]
    assert set(route["group_by"]) == {"org", "alertname"}
    by_severity = {}
    for child in route["routes"]:
        (matcher,) = child["matchers"]
        severity = re.fullmatch(r'severity="(\w+)"', matcher)
        assert severity, matcher
        by_severity[severity.group(1)] = child
    assert set(by_severity) == {"critical", "warning"}
    assert by_severity["critical"]["repeat_interval"] != by_severity["warning"]["repeat_interval"]
    # One receiver for everything: the one place a user edits.
    receivers = {r["name"]: r for r in config["receivers"]}
    used = {route["receiver"]} | {child["receiver"] for child in route["routes"]}
    assert used == set(receivers) == {"notify"}
    notifiers = [key for key in receivers["notify"] if key.endswith("_configs")]
    assert notifiers == ["webhook_configs"]
    text = ALERTMANAGER_CONFIG.read_text(encoding="utf-8")
    assert "# slack_configs:" in text
    assert "# email_configs:" in text


@pytest.mark.tool
def test_amtool_check_config() -> None:
    amtool = require_tool("amtool", AMTOOL_HINT)
    output = assert_ok(run([amtool, "check-config", str(ALERTMANAGER_CONFIG)]))
    assert "SUCCESS" in output


@pytest.mark.tool
@pytest.mark.parametrize("severity", ["critical", "warning"])
def test_amtool_routes_each_severity_to_the_receiver(severity: str) -> None:
    amtool = require_tool("amtool", AMTOOL_HINT)
    assert_ok(
        run(
            [
                amtool,
                "config",
                "routes",
                "test",
                f"--config.file={ALERTMANAGER_CONFIG}",
                "--verify.receivers=notify",
                f"severity={severity}",
                "org=acme",
                "alertname=ClaudeUsageWindowHigh",
            ]
        )
    )


# --------------------------------------------------------------------------------------
# Grafana
# --------------------------------------------------------------------------------------


def test_grafana_datasource_provisioning() -> None:
    (datasource,) = load_yaml(DATASOURCE_FILE)["datasources"]
    assert datasource["uid"] == "prometheus"
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"


def test_dashboard_identity_and_variables() -> None:
    board = dashboard()
    assert board["uid"] == DASHBOARD_UID
    assert board["title"]
    assert board.get("id") is None
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    org = variables["org"]
    assert org["type"] == "query"
    assert org["definition"] == "label_values(claude_usage_up, org)"
    assert org["query"]["query"] == org["definition"]
    assert org["multi"] is True
    assert org["includeAll"] is True
    assert org["datasource"]["uid"] == DATASOURCE_REF


def test_every_panel_has_title_description_unit_and_the_datasource_variable() -> None:
    all_panels = panels()
    assert len(all_panels) >= 10
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in all_panels:
        name = panel.get("title") or f"panel {panel['id']}"
        assert panel.get("title", "").strip(), name
        if panel["type"] == "row":  # a heading over the panels below it
            continue
        assert panel.get("description", "").strip(), f"{name}: no description"
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{name}: no unit"
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_REF}, name
        assert panel["targets"], f"{name}: no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE_REF, name


def test_no_hard_coded_datasource_anywhere() -> None:
    for key, value in walk(dashboard()):
        if key == "datasource" and isinstance(value, dict):
            assert value.get("uid") == DATASOURCE_REF, value
        elif key == "datasource":
            pytest.fail(f"datasource given by name: {value!r}")


def test_panels_fit_the_grid_without_overlapping() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in panels():
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def panel_exprs(panel: dict[str, Any]) -> str:
    return "\n".join(t["expr"] for t in panel.get("targets", []))


def test_utilization_panels_are_ratios_with_alert_thresholds() -> None:
    utilization = [p for p in panels() if "claude_usage_utilization_ratio" in panel_exprs(p)]
    assert {p["type"] for p in utilization} >= {"timeseries", "bargauge"}
    for panel in utilization:
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults["unit"] == "percentunit", panel["title"]
        steps = [s["value"] for s in defaults["thresholds"]["steps"]]
        assert steps == [None, 0.8, 0.95], panel["title"]


def test_dashboard_covers_usage_polls_and_proxy() -> None:
    exprs = "\n".join(expr for _, expr in dashboard_expressions())
    for needle in (
        'claude_usage_resets_at_timestamp_seconds{org=~"$org"} - time()',
        "claude_usage_extra_used_credits",
        "claude_usage_extra_monthly_limit_credits",
        "claude_usage_up",
        "increase(claude_usage_polls_total",
        "time() - claude_usage_last_success_timestamp_seconds",
        "rate(claude_proxy_requests_total[$__rate_interval])",
        "histogram_quantile(0.99, sum by (le, endpoint) "
        "(rate(claude_proxy_request_duration_seconds_bucket",
    ):
        assert needle in exprs, needle
    by_title = {p["title"]: p for p in panels()}
    assert by_title["Time until each window resets"]["fieldConfig"]["defaults"]["unit"] in {
        "s",
        "dtdurations",
    }


def test_org_level_queries_filter_on_the_org_variable() -> None:
    """Every query of per-org series follows $org; the discovery accounts' credential
    series (selected by `account`) have no org to filter on."""
    selector = re.compile(r"(claude_usage_\w+)(\{[^}]*\})?")
    for where, expr in dashboard_expressions():
        for name, matchers in selector.findall(expr):
            if 'account!=""' in matchers:
                continue
            assert 'org=~"$org"' in matchers, f"{where}: {name} ignores $org"


def test_dashboard_provider_loads_the_mounted_dashboards() -> None:
    (provider,) = load_yaml(DASHBOARD_PROVIDER_FILE)["providers"]
    assert provider["type"] == "file"
    grafana = compose()["services"]["grafana"]
    mounts = dict(parse_volume(v)[:2] for v in grafana["volumes"])
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"


# --------------------------------------------------------------------------------------
# docker-compose.yml
# --------------------------------------------------------------------------------------

# Host files the user writes before using a profile: not in the repository.
USER_SUPPLIED = {"./config.toml": "default"}


def parse_volume(spec: str) -> tuple[str, str, str]:
    source, target, *mode = spec.split(":")
    return source, target, mode[0] if mode else "rw"


def test_compose_services_and_profiles() -> None:
    services = compose()["services"]
    assert set(services) == {"monitor", "monitor-demo", "prometheus", "alertmanager", "grafana"}
    monitor, demo = services["monitor"], services["monitor-demo"]
    assert monitor["profiles"] == ["default"]
    assert demo["profiles"] == ["demo"]
    assert monitor["command"] == [
        "run",
        "--host",
        ALL_INTERFACES,
        "--config",
        "/etc/monitor/config.toml",
    ]
    assert demo["command"] == ["demo", "--host", ALL_INTERFACES]
    assert "monitor" in demo["networks"]["default"]["aliases"]
    assert "./config.toml:/etc/monitor/config.toml:ro" in monitor["volumes"]
    # Secrets pass through from the environment, with no value in the file.
    assert monitor["environment"]
    assert all("=" not in item for item in monitor["environment"])
    for name in ("prometheus", "alertmanager", "grafana"):
        assert "profiles" not in services[name], f"{name} must run in both profiles"


def test_compose_images_are_pinned() -> None:
    for name, service in compose()["services"].items():
        if "build" in service:
            continue
        image = service["image"]
        assert re.search(r":v?\d+\.\d+\.\d+$", image), f"{name}: {image} is not pinned"
    images = {name: s.get("image", "") for name, s in compose()["services"].items()}
    assert images["prometheus"].startswith("prom/prometheus:v3.")
    assert images["alertmanager"].startswith("prom/alertmanager:v0.")
    assert images["grafana"].startswith("grafana/grafana:")


def test_compose_health_and_dependencies() -> None:
    services = compose()["services"]
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition == {"condition": "service_healthy"}, name
            # Depending on a service of a disabled profile breaks the other profile.
            assert "profiles" not in services[dependency], f"{name} depends on {dependency}"
    assert "alertmanager" in services["prometheus"]["depends_on"]
    assert "prometheus" in services["grafana"]["depends_on"]


def test_compose_mounts_exist_read_only_and_volumes_are_named() -> None:
    top_volumes = set(compose().get("volumes") or {})
    named = set()
    for name, service in compose()["services"].items():
        for spec in service.get("volumes", []):
            source, _, mode = parse_volume(spec)
            if source.startswith((".", "/")):
                assert mode == "ro", f"{name}: {spec} is not read-only"
                if source in USER_SUPPLIED:
                    assert service["profiles"] == [USER_SUPPLIED[source]], (
                        f"{name} needs the user-supplied {source}"
                    )
                    continue
                assert (REPO / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in top_volumes, f"{name}: volume {source} not declared"
                named.add(source)
    assert named == top_volumes
    assert {"prometheus", "alertmanager", "grafana"} <= {
        name
        for name, s in compose()["services"].items()
        if any(parse_volume(v)[0] in top_volumes for v in s.get("volumes", []))
    }


def test_compose_prometheus_mounts_its_config() -> None:
    prometheus = compose()["services"]["prometheus"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    mounts = {parse_volume(v)[0]: parse_volume(v)[1] for v in prometheus["volumes"]}
    assert mounts["./prometheus"] == "/etc/prometheus"
    alertmanager = compose()["services"]["alertmanager"]
    mounts = {parse_volume(v)[0]: parse_volume(v)[1] for v in alertmanager["volumes"]}
    config_target = mounts["./alertmanager/alertmanager.yml"]
    assert f"--config.file={config_target}" in alertmanager["command"]


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return [require_tool("docker-compose", COMPOSE_HINT)]
    docker = shutil.which("docker")
    if docker and run([docker, "compose", "version"]).returncode == 0:
        return [docker, "compose"]
    return [require_tool("docker-compose", COMPOSE_HINT)]


@pytest.mark.tool
@pytest.mark.parametrize("profile", ["default", "demo"])
def test_compose_config_is_valid(profile: str) -> None:
    command = compose_command()
    assert_ok(run([*command, "--file", str(COMPOSE_FILE), "--profile", profile, "config", "-q"]))
