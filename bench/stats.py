"""Pure arithmetic over measurements: medians with their spread, per-round ratios, and
the least-squares slope used for "cost per 1,000 orgs"."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

JSON = dict[str, Any]


def rounded(value: float, digits: int = 3) -> float:
    """`value` to `digits` significant-enough places: 3 decimals below 100, 1 above."""
    return round(value, digits if abs(value) < 100 else 1)


def summarize(runs: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> JSON:
    """The median of each numeric `key` over `runs`, and `spread[key] = [min, max]`.

    A key missing or not a number in any run is left out (a scenario that could not
    measure it says why elsewhere)."""
    out: JSON = {}
    spread: JSON = {}
    for key in keys:
        values = [run.get(key) for run in runs]
        numbers = [float(v) for v in values if _is_number(v)]
        if not numbers or len(numbers) != len(values):
            continue
        out[key] = rounded(statistics.median(numbers))
        spread[key] = [rounded(min(numbers)), rounded(max(numbers))]
    out["spread"] = spread
    return out


def median_of_pairs(
    tops: Sequence[float], bottoms: Sequence[float], combine: str
) -> tuple[float, list[float]] | None:
    """Combine round i of one series with round i of another (`ratio` or `difference`);
    the median of the results and their [min, max]. None if a ratio's bottom is 0."""
    if not tops or len(tops) != len(bottoms):
        return None
    if combine == "ratio":
        if any(b == 0 for b in bottoms):
            return None
        values = [t / b for t, b in zip(tops, bottoms, strict=True)]
    elif combine == "difference":
        values = [t - b for t, b in zip(tops, bottoms, strict=True)]
    else:
        raise ValueError(f"combine must be 'ratio' or 'difference', not {combine!r}")
    return rounded(statistics.median(values)), [rounded(min(values)), rounded(max(values))]


def least_squares(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    """Slope and intercept of the ordinary least-squares line through (x, y); None with
    fewer than two distinct x."""
    if len(xs) != len(ys) or len(set(xs)) < 2:
        return None
    mean_x = statistics.fmean(xs)
    mean_y = statistics.fmean(ys)
    sxx = math.fsum((x - mean_x) ** 2 for x in xs)
    sxy = math.fsum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    return slope, mean_y - slope * mean_x


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
