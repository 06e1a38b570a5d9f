"""The benchmark's pure parts: medians and spreads, per-round ratios, least squares, the
proxy ratios, growth per 1,000 orgs, the loop plan, the page section it rewrites."""

from __future__ import annotations

from typing import Any

import pytest

from bench.growth import growth
from bench.loops import UVLOOP_MISSING, plan_loops
from bench.ratios import proxy_ratios
from bench.report import BEGIN, END, replace_section
from bench.stats import least_squares, median_of_pairs, summarize


def test_summarize_keeps_the_median_and_the_spread() -> None:
    runs: list[dict[str, Any]] = [{"a": 3.0, "b": 1}, {"a": 1.0, "b": 2}, {"a": 2.0, "b": None}]
    out = summarize(runs, ("a", "b", "c"))
    assert out["a"] == 2.0
    assert out["spread"]["a"] == [1.0, 3.0]
    # b is missing from one run and c from all: no median pretends to cover them
    assert "b" not in out
    assert "c" not in out


def test_median_of_pairs_pairs_round_by_round() -> None:
    # round 2 ran slower for both: the per-round ratio stays 0.5
    assert median_of_pairs([50, 25, 50], [100, 50, 100], "ratio") == (0.5, [0.5, 0.5])
    assert median_of_pairs([3, 5, 4], [1, 1, 1], "difference") == (3.0, [2.0, 4.0])
    assert median_of_pairs([1], [0], "ratio") is None
    assert median_of_pairs([1, 2], [1], "ratio") is None
    with pytest.raises(ValueError, match="combine"):
        median_of_pairs([1], [1], "sum")


def test_least_squares_recovers_a_line() -> None:
    fit = least_squares([100, 1_000, 10_000, 30_000], [5.1, 14.1, 104.1, 304.1])
    assert fit is not None
    slope, intercept = fit
    assert slope == pytest.approx(0.01)
    assert intercept == pytest.approx(4.1)
    assert least_squares([5, 5], [1, 2]) is None
    assert least_squares([1], [1]) is None


def load_row(
    target: str, loop: str, connections: int, runs: list[tuple[float, float, float]]
) -> dict[str, Any]:
    return {
        "target": target,
        "loop": loop,
        "connections": connections,
        "runs": [{"rps": r, "p50_ms": p50, "p99_ms": p99} for r, p50, p99 in runs],
    }


def test_proxy_ratios_compare_like_with_like() -> None:
    rows = [
        load_row("direct", "-", 1, [(9000, 0.05, 0.1)] * 2),
        load_row("direct", "-", 32, [(90000, 0.2, 0.5)] * 2),
        load_row("nginx", "-", 1, [(8000, 0.1, 0.2), (8000, 0.1, 0.2)]),
        load_row("nginx", "-", 32, [(60000, 0.5, 1.0), (30000, 0.5, 1.0)]),
        load_row("floor", "asyncio", 1, [(3000, 0.3, 1.0), (3000, 0.3, 1.0)]),
        load_row("floor", "asyncio", 32, [(6000, 5.0, 9.0), (3000, 5.0, 9.0)]),
        load_row("monitor", "asyncio", 1, [(2000, 0.4, 1.5), (2000, 0.45, 1.2)]),
        load_row("monitor", "asyncio", 32, [(3000, 9.0, 20.0), (1500, 9.0, 20.0)]),
        load_row("floor-uvloop", "uvloop", 1, [(4000, 0.2, 0.5)] * 2),
        load_row("floor-uvloop", "uvloop", 32, [(8000, 4.0, 8.0)] * 2),
        {"target": "monitor-uvloop", "loop": "uvloop", "skipped": "skipped: why"},
    ]
    ratios = proxy_ratios(rows, (1, 32))
    assert "direct" not in ratios  # the upstream itself is no proxy
    monitor = ratios["monitor"]
    assert monitor["floor"] == "floor"
    assert monitor["rps_vs_floor"] == 0.5  # round by round: 3000/6000, 1500/3000
    assert monitor["rps_vs_nginx"] == 0.05
    assert monitor["p50_added_us_vs_floor"] == pytest.approx(125.0)  # median of 100, 150
    assert monitor["spread"]["p50_added_us_vs_floor"] == [pytest.approx(100), pytest.approx(150)]
    assert monitor["p99_added_us_vs_nginx"] == pytest.approx(1150.0)
    assert ratios["floor-uvloop"]["floor"] == "floor-uvloop"
    assert "rps_vs_floor" not in ratios["floor-uvloop"]  # not against itself
    assert ratios["floor-uvloop"]["rps_vs_nginx"] == pytest.approx(0.2)
    assert "monitor-uvloop" not in ratios
    assert "rps_vs_nginx" not in ratios["nginx"]


def test_a_skipped_reference_gives_its_reason() -> None:
    rows = [
        {"target": "nginx", "loop": "-", "skipped": "skipped: nginx not installed"},
        load_row("floor", "asyncio", 1, [(3000, 0.3, 1.0)]),
        load_row("floor", "asyncio", 4, [(3000, 0.3, 1.0)]),
        load_row("monitor", "asyncio", 1, [(2000, 0.4, 1.5)]),
        load_row("monitor", "asyncio", 4, [(1500, 0.4, 1.5)]),
    ]
    monitor = proxy_ratios(rows, (1, 4))["monitor"]
    assert monitor["rps_vs_nginx"] == "skipped: nginx not installed"
    assert monitor["rps_vs_floor"] == 0.5


def test_growth_is_the_slope_per_thousand_orgs() -> None:
    def rows(field: str, per_org: float, base: float) -> list[dict[str, Any]]:
        return [{"orgs": n, field: base + per_org * n} for n in (100, 1_000, 10_000)]

    scenarios = {
        "scrape_cost": {
            "rows": [
                {**a, **b}
                for a, b in zip(rows("first_ms", 0.02, 3), rows("cached_ms", 0.01, 2), strict=True)
            ]
        },
        "poll_scaling": {"rows": rows("cpu_s", 0.0004, 0.0)},
        "memory": {
            "rows": [
                {**a, **b}
                for a, b in zip(
                    rows("rss_after_polls_mb", 0.007, 50),
                    rows("rss_after_scrapes_mb", 0.01, 50),
                    strict=True,
                )
            ]
        },
    }
    out = {row["figure"]: row for row in growth(scenarios)["rows"]}
    assert out["scrape, first render"]["per_1000_orgs"] == pytest.approx(20)
    assert out["scrape, first render"]["at_zero_orgs"] == pytest.approx(3)
    assert out["scrape, cached"]["per_1000_orgs"] == pytest.approx(10)
    assert out["poll CPU (first cycle)"]["per_1000_orgs"] == pytest.approx(400)  # ms
    assert out["RSS after polls"]["per_1000_orgs"] == pytest.approx(7)
    assert out["RSS after scrapes"]["unit"] == "MB"
    one = {key: {"rows": value["rows"][:1]} for key, value in scenarios.items()}
    assert all("skipped" in row for row in growth(one)["rows"])


def test_loop_plan() -> None:
    # No uvloop: the default row writes no key (monitor's "auto" is asyncio then).
    plan = plan_loops(installed=False)
    assert plan.default_key is None
    assert plan.floor_uvloop_skip == plan.monitor_uvloop_skip == UVLOOP_MISSING
    plan = plan_loops(installed=True)
    assert plan.default_key == "asyncio"
    assert plan.floor_uvloop_skip is None
    assert plan.monitor_uvloop_skip is None


def test_replace_section_keeps_the_prose() -> None:
    page = f"intro\n{BEGIN}\nold tables\n{END}\noutro\n"
    assert replace_section(page, "new\n", "p") == f"intro\n{BEGIN}\n\nnew\n\n{END}\noutro\n"
    with pytest.raises(ValueError, match=r"no .* section"):
        replace_section("no markers", "new", "p")
