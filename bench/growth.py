"""How cost grows with the org count, to size a deployment (pure; from the result rows).

Each figure is the slope of the ordinary least-squares line through the (orgs, median)
points of the sizes measured, times 1,000: "per 1,000 orgs". The intercept is the cost at
zero orgs the line implies (for RSS: the daemon's base size). Least squares weighs the
largest sizes most, which is where the cost per org matters.
"""

from __future__ import annotations

from typing import Any

from bench.stats import least_squares, rounded

JSON = dict[str, Any]

# (name, scenario, field, scale to the unit, unit per 1,000 orgs)
FIGURES = (
    ("scrape, first render", "scrape_cost", "first_ms", 1.0, "ms"),
    ("scrape, cached", "scrape_cost", "cached_ms", 1.0, "ms"),
    ("poll CPU (first cycle)", "poll_scaling", "cpu_s", 1000.0, "ms"),
    ("RSS after polls", "memory", "rss_after_polls_mb", 1.0, "MB"),
    ("RSS after scrapes", "memory", "rss_after_scrapes_mb", 1.0, "MB"),
)
METHOD = (
    "slope of the least-squares line through (orgs, median) over the sizes measured, "
    "x 1,000; intercept: that line at 0 orgs"
)


def growth(scenarios: JSON) -> JSON:
    rows: list[JSON] = []
    for name, scenario, field, scale, unit in FIGURES:
        points = [
            (row["orgs"], row[field] * scale)
            for row in scenarios[scenario]["rows"]
            if isinstance(row.get(field), int | float)
        ]
        fit = least_squares([x for x, _ in points], [y for _, y in points])
        entry: JSON = {
            "figure": name,
            "from": f"scenarios.{scenario}.rows[].{field}",
            "sizes": [x for x, _ in points],
            "unit": unit,
        }
        if fit is None:
            entry["skipped"] = "skipped: fewer than two org counts measured"
        else:
            entry["per_1000_orgs"] = rounded(fit[0] * 1000, 3)
            entry["at_zero_orgs"] = rounded(fit[1], 1)
        rows.append(entry)
    return {"method": METHOD, "rows": rows}
