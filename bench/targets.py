"""The targets every result is checked against (pure; from the result's scenarios).

Each target in the result: `target` (what), `value` (a median over the run's repetitions),
`spread` ([min, max] over them, when measured), `limit`, `unit`, `at_most` (True: value
must be <= limit; False: >=), `met` (a boolean, or None with a `reason` when the run did
not measure it), `from` (where the value is in the result) and `limit_from` (where the
limit is explained). The limits are not to be lowered: see docs/benchmarks.md#targets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.sizes import TARGET_ORGS

JSON = dict[str, Any]
LIMITS_FROM = "docs/benchmarks.md#targets"
AT = f"{TARGET_ORGS:,} orgs"
# A value and its spread, or the reason there is none.
Picked = tuple[float, list[float] | None] | str


@dataclass(frozen=True)
class Target:
    name: str
    limit: float
    unit: str
    at_most: bool
    where: str
    pick: Callable[[JSON], Picked]


def _ratio(target: str, key: str) -> Callable[[JSON], Picked]:
    def pick(s: JSON) -> Picked:
        rows = {row["target"]: row for row in s["proxy"]["rows"]}
        if "skipped" in rows.get(target, {}):
            return str(rows[target]["skipped"])
        figures = s["proxy"]["ratios"].get(target)
        if figures is None:
            return f"not measured: no {target} row"
        value = figures.get(key)
        if not isinstance(value, int | float):
            return str(value) if value is not None else f"not measured: no {key}"
        return float(value), figures["spread"].get(key)

    return pick


def _at_target_orgs(scenario: str, key: str) -> Callable[[JSON], Picked]:
    def pick(s: JSON) -> Picked:
        rows = {row["orgs"]: row for row in s[scenario]["rows"]}
        row = rows.get(TARGET_ORGS)
        if row is None:
            counts = ", ".join(f"{n:,}" for n in rows) or "none"
            return f"not measured: this run's org counts are {counts} (the target is at {AT})"
        if not isinstance(row.get(key), int | float):
            return f"not measured: no {key} at {TARGET_ORGS:,} orgs"
        return float(row[key]), row["spread"].get(key)

    return pick


def _isolation(s: JSON) -> Picked:
    iso = s["isolation"]
    if "skipped" in iso:
        return str(iso["skipped"])
    if iso["orgs"] != TARGET_ORGS:
        return f"not measured: isolation ran at {iso['orgs']:,} orgs (the target is at {AT})"
    if not isinstance(iso.get("p99_ratio"), int | float):
        return "not measured: no quiet p99 to compare with"
    return float(iso["p99_ratio"]), iso["spread"].get("p99_ratio")


def targets(connections: tuple[int, int]) -> list[Target]:
    low, high = connections
    orgs = f"{TARGET_ORGS:,} orgs"
    out: list[Target] = []
    for row, loop in (("monitor", ""), ("monitor-uvloop", " on uvloop")):
        ratios = f"scenarios.proxy.ratios.{row}"
        out += [
            Target(
                f"proxy req/s at {high} conns{loop}, x the floor's",
                0.85,
                "x",
                False,
                f"{ratios}.rps_vs_floor",
                _ratio(row, "rps_vs_floor"),
            ),
            Target(
                f"proxy p50 at {low} conn{loop}, over the floor's",
                50,
                "µs",
                True,
                f"{ratios}.p50_added_us_vs_floor",
                _ratio(row, "p50_added_us_vs_floor"),
            ),
        ]
    out += [
        Target(
            f"proxy p99 while /metrics is scraped every second, {orgs}, x quiet",
            2.0,
            "x",
            True,
            "scenarios.isolation.p99_ratio",
            _isolation,
        ),
        Target(
            f"CPU per poll, {orgs}",
            0.3,
            "ms",
            True,
            "scenarios.poll_scaling.rows[orgs=10000].cpu_ms_per_poll",
            _at_target_orgs("poll_scaling", "cpu_ms_per_poll"),
        ),
        Target(
            f"poll cycle, {orgs}, x ideal",
            1.2,
            "x",
            True,
            "scenarios.poll_scaling.rows[orgs=10000].ratio",
            _at_target_orgs("poll_scaling", "ratio"),
        ),
        Target(
            f"/metrics cached, {orgs}, uncompressed",
            150,
            "ms",
            True,
            "scenarios.scrape_cost.rows[orgs=10000].cached_ms",
            _at_target_orgs("scrape_cost", "cached_ms"),
        ),
        Target(
            f"/metrics first render, {orgs}, uncompressed",
            300,
            "ms",
            True,
            "scenarios.scrape_cost.rows[orgs=10000].first_ms",
            _at_target_orgs("scrape_cost", "first_ms"),
        ),
        Target(
            f"RSS, {orgs} polled and scraped (the larger)",
            150,
            "MB",
            True,
            "scenarios.memory.rows[orgs=10000].rss_max_mb",
            _at_target_orgs("memory", "rss_max_mb"),
        ),
    ]
    return out


def evaluate(target: Target, scenarios: JSON) -> JSON:
    out: JSON = {
        "target": target.name,
        "limit": target.limit,
        "unit": target.unit,
        "at_most": target.at_most,
        "from": target.where,
        "limit_from": LIMITS_FROM,
    }
    picked = target.pick(scenarios)
    if isinstance(picked, str):
        return {**out, "value": None, "spread": None, "met": None, "reason": picked}
    value, spread = picked
    met = value <= target.limit if target.at_most else value >= target.limit
    return {**out, "value": value, "spread": spread, "met": met}


def evaluate_targets(result: JSON) -> list[JSON]:
    scenarios = result["scenarios"]
    ratios = scenarios["proxy"]["ratios"]
    connections = (ratios["connections_low"], ratios["connections_high"])
    evaluated = [evaluate(t, scenarios) for t in targets(connections)]
    if not scenarios["proxy"].get("comparable", True):
        for entry in evaluated:
            if entry["from"].startswith("scenarios.proxy."):
                entry["note"] = "; ".join(scenarios["proxy"]["notes"])
    return evaluated
