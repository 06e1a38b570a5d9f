"""The targets a benchmark result is checked against: each has a boolean verdict when
measured, or the reason it was not; limits are compared the right way round."""

from __future__ import annotations

from typing import Any

import pytest

from bench.loops import UVLOOP_MISSING
from bench.report import targets_across
from bench.targets import evaluate_targets, targets
from tests.support.paths import ROOT

NAMES = (
    "proxy req/s at 32 conns, x the floor's",
    "proxy p50 at 1 conn, over the floor's",
    "proxy req/s at 32 conns on uvloop, x the floor's",
    "proxy p50 at 1 conn on uvloop, over the floor's",
    "proxy p99 while /metrics is scraped every second, 10,000 orgs, x quiet",
    "CPU per poll, 10,000 orgs",
    "poll cycle, 10,000 orgs, x ideal",
    "/metrics cached, 10,000 orgs, uncompressed",
    "/metrics first render, 10,000 orgs, uncompressed",
    "RSS, 10,000 orgs polled and scraped (the larger)",
)


def scenarios(orgs: int = 10_000, values: dict[str, float] | None = None) -> dict[str, Any]:
    def v(key: str, default: float) -> float:
        return (values or {}).get(key, default)

    def row(**fields: float) -> dict[str, Any]:
        return {
            "orgs": orgs,
            **fields,
            "spread": {k: [x * 0.9, x * 1.1] for k, x in fields.items()},
        }

    return {
        "proxy": {
            "comparable": True,
            "notes": [],
            "rows": [
                {"target": "monitor", "loop": "asyncio", "connections": 32},
                {"target": "monitor-uvloop", "loop": "uvloop", "skipped": UVLOOP_MISSING},
            ],
            "ratios": {
                "connections_low": 1,
                "connections_high": 32,
                "monitor": {
                    "rps_vs_floor": v("rps", 0.9),
                    "p50_added_us_vs_floor": v("p50", 40.0),
                    "spread": {"rps_vs_floor": [0.8, 0.95]},
                },
            },
        },
        "isolation": {"orgs": orgs, "p99_ratio": v("iso", 1.5), "spread": {}},
        "poll_scaling": {"rows": [row(cpu_ms_per_poll=v("cpu", 0.25), ratio=v("cycle", 1.1))]},
        "scrape_cost": {"rows": [row(cached_ms=v("cached", 100.0), first_ms=v("first", 250.0))]},
        "memory": {"rows": [row(rss_max_mb=v("rss", 140.0))]},
    }


def by_name(s: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["target"]: t for t in evaluate_targets({"scenarios": s})}


def test_every_target_is_present_with_a_verdict_or_a_reason() -> None:
    targets = by_name(scenarios())
    assert tuple(targets) == NAMES
    for target in targets.values():
        assert set(target) >= {"value", "limit", "unit", "met", "from", "limit_from", "at_most"}
        if target["met"] is None:
            assert target["reason"]
        else:
            assert isinstance(target["met"], bool)
    assert all(t["met"] is True for n, t in targets.items() if "uvloop" not in n)
    uvloop = targets["proxy req/s at 32 conns on uvloop, x the floor's"]
    assert uvloop["met"] is None
    assert uvloop["reason"] == UVLOOP_MISSING
    assert targets[NAMES[0]]["spread"] == [0.8, 0.95]
    assert targets[NAMES[5]]["spread"] == [pytest.approx(0.225), pytest.approx(0.275)]


@pytest.mark.parametrize(
    ("name", "key", "at_limit", "over"),
    [
        (NAMES[0], "rps", 0.85, 0.84),  # at least
        (NAMES[1], "p50", 50.0, 51.0),
        (NAMES[4], "iso", 2.0, 2.1),
        (NAMES[5], "cpu", 0.3, 0.31),
        (NAMES[6], "cycle", 1.2, 1.21),
        (NAMES[7], "cached", 150.0, 151.0),
        (NAMES[8], "first", 300.0, 301.0),
        (NAMES[9], "rss", 150.0, 150.5),
    ],
)
def test_limits_compare_the_right_way(name: str, key: str, at_limit: float, over: float) -> None:
    assert by_name(scenarios(values={key: at_limit}))[name]["met"] is True
    assert by_name(scenarios(values={key: over}))[name]["met"] is False


def test_targets_at_10000_orgs_say_when_the_run_did_not_reach_them() -> None:
    targets = by_name(scenarios(orgs=20))
    for name in NAMES[4:]:
        assert targets[name]["met"] is None
        assert "10,000" in targets[name]["reason"]
        assert "20" in targets[name]["reason"]


def test_a_run_without_nginx_marks_the_proxy_targets_not_comparable() -> None:
    s = scenarios()
    s["proxy"]["comparable"] = False
    s["proxy"]["notes"] = ["nginx not installed: not comparable"]
    targets = by_name(s)
    assert targets[NAMES[0]]["note"] == "nginx not installed: not comparable"
    assert "note" not in targets[NAMES[5]]


def test_the_docs_list_every_target_with_its_limit() -> None:
    page = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    section = page.split("\n## Targets\n", 1)[1].split("\n## ", 1)[0]
    for target in targets((1, 32)):
        bound = ("≤ " if target.at_most else "≥ ") + f"{target.limit:g} {target.unit}"
        assert f"| {target.name} | {bound} |" in section, target.name


def test_across_runs_a_target_is_met_only_if_every_run_met_it() -> None:
    runs = [
        {"started": f"run{i}", "targets": evaluate_targets({"scenarios": scenarios(values=v)})}
        for i, v in enumerate([{}, {"cpu": 0.5}, {}])
    ]
    lines = targets_across(runs)
    assert lines[0] == "#### Targets across 3 consecutive full runs"
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| ")}
    cpu = rows["CPU per poll, 10,000 orgs"]
    assert cpu.endswith("| ≤ 0.3 ms | **no** |")
    assert "| 0.25 ms | 0.5 ms **(no)** | 0.25 ms |" in cpu
    assert rows["RSS, 10,000 orgs polled and scraped (the larger)"].endswith("| yes |")
    # a target a run did not measure is a dash there, and not met in every run
    uvloop = rows["proxy req/s at 32 conns on uvloop, x the floor's"]
    assert "| - | - | - |" in uvloop
    assert uvloop.endswith("| **no** |")
