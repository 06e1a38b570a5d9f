"""The proxy scenario's ratios, computed from its rows (pure; see `bench/proxy.py`).

Each figure pairs round i of a target with round i of its reference (measured moments
apart, so drift cancels) and keeps the median over rounds and the [min, max]:

- `rps_vs_nginx`, `rps_vs_floor`: requests/s at the high connection count, as a ratio;
- `p50_added_us_vs_*`, `p99_added_us_vs_*`: latency at the low connection count, in
  microseconds added over the reference.

The floor of a target on uvloop is the floor on uvloop (like for like). A reference that
was not measured gives its "skipped: ..." reason in place of the number.
"""

from __future__ import annotations

from typing import Any

from bench.stats import median_of_pairs

JSON = dict[str, Any]


def floor_of(loop: str) -> str:
    return "floor-uvloop" if loop == "uvloop" else "floor"


def proxy_ratios(rows: list[JSON], connections: tuple[int, int]) -> JSON:
    low, high = connections
    by_key = {(row["target"], row.get("connections")): row for row in rows}
    skipped = {row["target"]: row["skipped"] for row in rows if "skipped" in row}
    out: JSON = {"connections_low": low, "connections_high": high}
    for row in rows:
        if "skipped" in row or row["connections"] != high or row["target"] == "direct":
            continue  # direct is the upstream itself, not a proxy
        name = row["target"]
        figures: JSON = {"floor": floor_of(row["loop"])}
        spread: JSON = {}
        for reference, suffix in (("nginx", "nginx"), (floor_of(row["loop"]), "floor")):
            if reference == name:
                continue
            if reference in skipped:
                for key in ("rps", "p50_added_us", "p99_added_us"):
                    figures[f"{key}_vs_{suffix}"] = skipped[reference]
                continue
            pairs = {
                "rps": (by_key[name, high], by_key[reference, high], "rps", "ratio", 1.0),
                "p50_added_us": (
                    by_key[name, low],
                    by_key[reference, low],
                    "p50_ms",
                    "difference",
                    1000.0,
                ),
                "p99_added_us": (
                    by_key[name, low],
                    by_key[reference, low],
                    "p99_ms",
                    "difference",
                    1000.0,
                ),
            }
            for key, (top, bottom, field, combine, scale) in pairs.items():
                tops = [run[field] * scale for run in top["runs"]]
                bottoms = [run[field] * scale for run in bottom["runs"]]
                combined = median_of_pairs(tops, bottoms, combine)
                if combined is not None:
                    figures[f"{key}_vs_{suffix}"] = combined[0]
                    spread[f"{key}_vs_{suffix}"] = combined[1]
        figures["spread"] = spread
        out[name] = figures
    return out
