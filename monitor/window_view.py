"""The end of a window's block on the status page: where the window is heading.

- A sparkline of its recent utilization (from `history`): an inline SVG, no script and no
  external asset, from its oldest reading of the last hours (or of the window, when
  shorter) to now, with the even pace as a dashed line when the window's length is
  known. The SVG is an image whose text alternative says what it shows ("over the last
  2h 40m: from 31.0% to 48.0%, +6.4 points an hour").
- A pace line from `pace`: "pace 1.3x — at this rate 100% in 2h 10m, before the reset in
  3h 05m", or "pace 0.8x — on pace to end at 62%", or why there is no pace yet (the
  page writes the multiplication sign, which a screen reader reads as "times").
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from monitor.history import SPAN_SECONDS
from monitor.pace import format_ratio, recent_rate, window_pace
from monitor.report import format_duration
from monitor.usage import UsageWindow

TIMES = "\u00d7"
# The sparkline's drawing box; it is stretched to the block's width by CSS. Values are
# drawn PAD inside it, so a line at 0 % or 100 % is not cut in half.
WIDTH = 100.0
HEIGHT = 24.0
PAD = 2.0

# Appended to the status page's style sheet. The line takes the colour of the window's
# level, as its meter does; every colour keeps 3:1 against the block (WCAG 1.4.11).
STYLE = """
.spark { display: block; width: 100%; height: 1.75rem; overflow: visible; }
.spark .track { fill: var(--track); opacity: 0.45; }
.spark .line { fill: none; stroke: var(--ok); stroke-width: 2; stroke-linejoin: round;
  stroke-linecap: round; }
.spark.warning .line { stroke: var(--warn); }
.spark.critical .line { stroke: var(--crit); }
.spark .even { fill: none; stroke: var(--muted); stroke-width: 1; stroke-dasharray: 3 3; }
.pace { margin: 0; font-size: 0.85rem; color: var(--muted);
  font-variant-numeric: tabular-nums; }
.pace.ahead { color: var(--warn-text); font-weight: 600; }
"""


def _percent(ratio: float) -> str:
    return f"{ratio * 100:.1f}%"


def _shown_span(length: float | None) -> float:
    return SPAN_SECONDS if length is None else min(SPAN_SECONDS, length)


def spark_label(points: Sequence[tuple[float, float]], now: float) -> str:
    """The sparkline's text alternative: the span it covers, from what to what, and the
    recent rate where there is one."""
    (start, first), (_, last) = points[0], points[-1]
    text = (
        f"over the last {format_duration(now - start)}: from {_percent(first)} to {_percent(last)}"
    )
    rate = recent_rate(points)
    if rate is not None:
        text += f", {rate * 100:+.1f} points an hour"
    return text


def sparkline(
    window: UsageWindow,
    points: Sequence[tuple[float, float]],
    length: float | None,
    now: float,
    level: str,
    name: str,
) -> str:
    """The SVG of `points` (time, utilization ratio) within the shown span before `now`,
    from the oldest of them to `now`; empty with fewer than two readings in it. `name`
    ("acme five_hour") starts its text alternative."""
    shown = [(t, v) for t, v in points if now - _shown_span(length) <= t <= now]
    if len(shown) < 2 or shown[0][0] >= now:
        return ""
    start = shown[0][0]
    top = max(1.0, *(v for _, v in shown))  # 100 % at the top, unless it went over

    def x(t: float) -> float:
        return (t - start) / (now - start) * WIDTH

    def y(value: float) -> float:
        return HEIGHT - PAD - max(0.0, value) / top * (HEIGHT - 2 * PAD)

    line = " ".join(f"{x(t):.2f},{y(v):.2f}" for t, v in shown)
    even = ""
    if length is not None and window.resets_at is not None and window.resets_at > now:
        # The even pace: from the start of the cycle (or the left edge) to now.
        cycle_start = max(start, window.resets_at - length)
        share = [(t, 1 - (window.resets_at - t) / length) for t in (cycle_start, now)]
        coords = " ".join(f"{x(t):.2f},{y(v):.2f}" for t, v in share)
        even = f'<polyline class="even" points="{coords}" vector-effect="non-scaling-stroke"/>'
    label = f"{name} utilization {spark_label(shown, now)}"
    if even:
        label += "; dashed: an even pace"
    label = escape(label)
    return (
        f'<svg class="spark {level}" viewBox="0 0 {WIDTH:g} {HEIGHT:g}" '
        f'preserveAspectRatio="none" role="img" aria-label="{label}">'
        f"<title>{label}</title>"
        f'<rect class="track" width="{WIDTH:g}" height="{HEIGHT:g}" rx="2"/>{even}'
        f'<polyline class="line" points="{line}" vector-effect="non-scaling-stroke"/></svg>'
    )


def pace_line(window: UsageWindow, length: float | None, now: float) -> str:
    """The pace sentence of a window, or empty where it has nothing to say (no value, no
    reset time, the reset already due)."""
    if window.utilization is None or window.resets_at is None or window.resets_at <= now:
        return ""
    pace = window_pace(window.utilization, window.resets_at, length, now)
    if pace is None:
        if length is None:
            why = "pace unknown until two resets show the window's length"
        elif window.resets_at - now > length:
            return ""  # a reset time further than one length away: nothing sure to say
        else:  # the first min(5 %, 1 h) of the window
            why = "pace: too early in the window"
        return f'<p class="pace">{why}</p>'
    head = f"pace {format_ratio(pace.ratio)}{TIMES}"
    reset = format_duration(pace.until_reset)
    if pace.until_full == 0.0:
        text = f"{head} — at 100%, the reset in {reset}"
    elif pace.until_full is not None:
        full = format_duration(pace.until_full)
        text = f"{head} — at this rate 100% in {full}, before the reset in {reset}"
    else:
        text = f"{head} — on pace to end at {pace.projected * 100:.0f}%"
    ahead = " ahead" if pace.until_full is not None else ""
    return f'<p class="pace{ahead}">{text}</p>'
