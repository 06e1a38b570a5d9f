"""The alert rules, the Prometheus and Alertmanager configs, and the metric names every
PromQL expression uses against the README's metrics table, read as files. (promtool and
amtool check the same files in `tests/system/test_observability_tools.py`.)"""

from __future__ import annotations

import re

import pytest

from tests.support.docs import readme_metrics
from tests.support.observability import (
    ALERTMANAGER_CONFIG,
    ALERTS_DOC,
    ALERTS_FILE,
    JOB,
    PROMETHEUS_CONFIG,
    PROMETHEUS_METRICS,
    RULES_FILE,
    alert_rules,
    documented_metric,
    expand_grafana_variables,
    load_yaml,
    metric_names_in_expression,
    metric_names_in_expressions,
    recorded_names,
    rule,
    rule_test_files,
)

# Documented, but neither on the dashboard nor in an alert: the reload gauges are read by
# whoever just sent a SIGHUP (docs/operating.md), not watched over time.
NOT_SHOWN = frozenset(
    {
        "claude_monitor_config_last_reload_successful",
        "claude_monitor_config_last_reload_success_timestamp_seconds",
    }
)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('claude_usage_up{org=~"acme|globex"} == 0', {"claude_usage_up"}),
        (
            "sum by (org, result) (increase(claude_usage_polls_total[5m] offset 1h)) > 1e3",
            {"claude_usage_polls_total"},
        ),
        (
            (
                "histogram_quantile(0.9, sum without (instance) (rate(x_bucket[2m]))) "
                "and on (org) group_left (window) y unless z"
            ),
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


def test_every_metric_used_is_in_the_readme() -> None:
    names = metric_names_in_expressions()
    unknown = {name for name in names if documented_metric(name) is None}
    unknown -= PROMETHEUS_METRICS | recorded_names()
    assert not unknown, f"metrics not in the README's metrics table: {sorted(unknown)}"


def test_every_documented_metric_is_shown_or_alerted_on() -> None:
    used = {documented_metric(name) for name in metric_names_in_expressions()}
    assert set(readme_metrics()) - NOT_SHOWN - used == set()
    assert set(readme_metrics()) >= NOT_SHOWN  # still documented, so still exposed


# Alert rules

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
    "ClaudeUsageOtlpPushFailing": "warning",
}


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


# Prometheus and Alertmanager configuration


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
