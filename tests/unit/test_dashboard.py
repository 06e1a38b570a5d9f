"""The Grafana dashboard and its provisioning, read as files."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.observability import (
    DASHBOARD_PROVIDER_FILE,
    DATASOURCE_FILE,
    compose,
    dashboard,
    dashboard_expressions,
    load_yaml,
    panels,
    parse_volume,
    walk,
)

DASHBOARD_UID = "claude-usage"
DATASOURCE_REF = "${datasource}"


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
        (
            "histogram_quantile(0.99, sum by (le, endpoint) "
            "(rate(claude_proxy_request_duration_seconds_bucket"
        ),
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
