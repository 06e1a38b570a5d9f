"""`python -m bench --tiny` runs every scenario end to end (nginx's static upstream and
reverse proxy, the floor, monitor, and the poll, scrape, memory and isolation daemons)
and writes a complete result file. Times are not asserted: this checks the harness and
the honesty of its arithmetic, not the machine."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.loops import UVLOOP_MISSING
from bench.targets import LIMITS_FROM
from monitor.event_loop import uvloop_installed
from tests.support.paths import ROOT
from tests.support.process import untraced_environ
from tests.support.tools import require_tool

SCENARIOS = ("proxy", "isolation", "poll_scaling", "scrape_cost", "memory", "growth")
REFERENCES = ("direct", "nginx", "floor", "monitor")
UVLOOP_ROWS = ("floor-uvloop", "monitor-uvloop")


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def run_bench(tmp_path: Path, *flags: str) -> dict[str, Any]:
    out = tmp_path / "r.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--out", str(out), *flags],
        cwd=ROOT,
        env=untraced_environ(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "#### Targets" in done.stdout  # the Markdown, targets last
    result: dict[str, Any] = json.loads(out.read_text())
    assert result["mode"] == "tiny"
    assert set(SCENARIOS) <= set(result["scenarios"])
    return result


def measured_rows(proxy: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r["target"], r["connections"]): r for r in proxy["rows"] if "skipped" not in r}


def check_load_row(row: dict[str, Any], rounds: int) -> None:
    assert len(row["runs"]) == rounds
    for key in ("rps", "p50_ms", "p99_ms"):
        values = [run[key] for run in row["runs"]]
        assert all(is_number(v) and v > 0 for v in values), row
        assert row[key] == pytest.approx(statistics.median(values), rel=1e-3, abs=1e-3)
        assert row["spread"][key] == pytest.approx([min(values), max(values)], abs=1e-3)
    assert row["errors"] == 0, row


def check_ratios(proxy: dict[str, Any]) -> None:
    """Every ratio is the median over rounds of the row figures it names."""
    rows = measured_rows(proxy)
    low, high = proxy["ratios"]["connections_low"], proxy["ratios"]["connections_high"]
    for name, figures in proxy["ratios"].items():
        if not isinstance(figures, dict):
            continue
        for reference, suffix in (("nginx", "nginx"), (figures["floor"], "floor")):
            if reference == name:
                continue
            key = f"rps_vs_{suffix}"
            if (reference, high) not in rows:
                assert str(figures[key]).startswith("skipped:")
                continue
            mine, theirs = rows[name, high]["runs"], rows[reference, high]["runs"]
            ratios = [a["rps"] / b["rps"] for a, b in zip(mine, theirs, strict=True)]
            assert figures[key] == pytest.approx(statistics.median(ratios), rel=1e-2)
            mine, theirs = rows[name, low]["runs"], rows[reference, low]["runs"]
            added = [(a["p50_ms"] - b["p50_ms"]) * 1000 for a, b in zip(mine, theirs, strict=True)]
            key = f"p50_added_us_vs_{suffix}"
            assert figures[key] == pytest.approx(statistics.median(added), abs=0.06)


def check_targets(result: dict[str, Any]) -> None:
    targets = result["targets"]
    assert len(targets) == 10
    for target in targets:
        assert set(target) >= {"target", "value", "limit", "unit", "met", "from", "limit_from"}
        assert target["limit_from"] == LIMITS_FROM
        if target["met"] is None:
            assert isinstance(target["reason"], str) and target["reason"], target
        else:
            assert isinstance(target["met"], bool)
            assert is_number(target["value"])
    by_name = {t["target"]: t for t in targets}
    # tiny runs stop at 20 orgs: the 10,000-org targets say so rather than pretend
    assert "10,000" in by_name["CPU per poll, 10,000 orgs"]["reason"]
    proxy = result["scenarios"]["proxy"]
    rps = by_name[f"proxy req/s at {proxy['ratios']['connections_high']} conns, x the floor's"]
    assert rps["value"] == proxy["ratios"]["monitor"]["rps_vs_floor"]


def check_org_scenarios(s: dict[str, Any]) -> None:
    for scenario, keys in (
        (
            "poll_scaling",
            ("cycle_s", "ideal_s", "ratio", "cpu_ms_per_poll", "floor_cpu_ms_per_poll"),
        ),
        ("scrape_cost", ("samples", "first_ms", "cached_ms", "text_bytes", "prometheus_ms")),
        ("memory", ("rss_after_polls_mb", "rss_after_scrapes_mb", "rss_max_mb")),
    ):
        assert [row["orgs"] for row in s[scenario]["rows"]] == [5, 20]
        for row in s[scenario]["rows"]:
            assert all(is_number(row[key]) for key in keys), (scenario, row)
    for row in s["poll_scaling"]["rows"]:
        assert row["polls"] >= row["orgs"]
    for row in s["scrape_cost"]["rows"]:
        assert row["samples"] > row["orgs"]
    for row in s["memory"]["rows"]:
        assert row["rss_max_mb"] == max(row["rss_after_polls_mb"], row["rss_after_scrapes_mb"])
    assert s["isolation"]["orgs"] == 20
    assert is_number(s["isolation"]["p99_ratio"])
    growth = {row["figure"]: row for row in s["growth"]["rows"]}
    assert set(growth) == {
        "scrape, first render",
        "scrape, cached",
        "poll CPU (first cycle)",
        "RSS after polls",
        "RSS after scrapes",
    }
    assert all(is_number(row["per_1000_orgs"]) for row in growth.values())


# The bench checks its harness, not monitor's lines: it runs untraced, its processes too.
@pytest.mark.untraced
@pytest.mark.tool
def test_tiny_run_measures_every_reference_and_writes_a_complete_result(tmp_path: Path) -> None:
    require_tool("wrk", "apt-get install wrk")
    require_tool("nginx", "apt-get install nginx-light")
    result = run_bench(tmp_path)
    s = result["scenarios"]
    proxy = s["proxy"]
    assert proxy["tool"] == "wrk"
    assert proxy["reference"].startswith("static nginx")
    assert proxy["comparable"] is True
    assert proxy["notes"] == []
    rows = measured_rows(proxy)
    low, high = proxy["ratios"]["connections_low"], proxy["ratios"]["connections_high"]
    for name in REFERENCES:
        for connections in (low, high):
            check_load_row(rows[name, connections], proxy["rounds"])
    skipped = {r["target"]: r["skipped"] for r in proxy["rows"] if "skipped" in r}
    if uvloop_installed():
        assert all((name, high) in rows or name in skipped for name in UVLOOP_ROWS)
        assert "floor-uvloop" not in skipped
    else:
        assert skipped == dict.fromkeys(UVLOOP_ROWS, UVLOOP_MISSING)
    check_ratios(proxy)
    check_org_scenarios(s)
    check_targets(result)
    machine = result["machine"]
    assert machine["cores"]
    assert machine["nginx"].startswith("nginx/")
    assert machine["wrk"].startswith("wrk")


@pytest.mark.untraced
def test_without_nginx_the_result_says_its_ratios_are_not_comparable(tmp_path: Path) -> None:
    result = run_bench(tmp_path, "--no-nginx", "--no-wrk")
    proxy = result["scenarios"]["proxy"]
    assert proxy["tool"] == "aiohttp"
    assert proxy["reference"].startswith("python upstream")
    assert proxy["comparable"] is False
    assert any("not comparable to the documented ones" in note for note in proxy["notes"])
    skipped = {r["target"]: r["skipped"] for r in proxy["rows"] if "skipped" in r}
    assert skipped["nginx"] == "skipped: nginx not installed"
    check_ratios(proxy)
    check_targets(result)
    notes = [
        t.get("note", "") for t in result["targets"] if t["from"].startswith("scenarios.proxy")
    ]
    assert all("not comparable" in note for note in notes)
