"""The status page at `/`: every org's windows, credits and poll health, as plain HTML.

`render_status` is a pure function of the store's states, the clock and the config, so
the page is tested with plain calls; the handler only gathers those three. The page needs
no JavaScript and no external asset: inline CSS, a `<meta refresh>` for liveness, and
every string from the upstream or the config goes through `html.escape`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from html import escape

from aiohttp import web

from monitor import __version__
from monitor.config_source import ConfigSource
from monitor.proxy_routes import ROUTES
from monitor.report import format_duration, format_extra
from monitor.schema import Config
from monitor.state import OrgState, UsageStore
from monitor.usage import UsageWindow

WARNING_RATIO = 0.80  # the same thresholds as ClaudeUsageWindowHigh / ...Critical
CRITICAL_RATIO = 0.95
MIN_REFRESH_SECONDS = 5
MAX_REFRESH_SECONDS = 60

_MEMORY_QUERY = "?project_uuid=<uuid>"
# The proxy's routes as a person types them (memory needs its query parameter).
PROXY_ROUTES: tuple[tuple[str, str, str], ...] = tuple(
    (
        route.name,
        route.method,
        route.path + ("?project_uuid=<uuid>" if route.name == "memory" else ""),
    )
    for route in ROUTES
)

_STYLE = """
:root {
  color-scheme: light dark;
  --bg: #f4f5f7; --card: #ffffff; --text: #1d2330; --muted: #646b7a; --line: #e2e5ea;
  --track: #e9ecf1; --ok: #2f7de1; --warn: #d98a00; --crit: #d93636;
  --ok-text: #1d5fb4; --warn-text: #985f00; --crit-text: #b42323;
  --crit-bg: #fdeceb; --good: #237a3b;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #14171c; --card: #1d2128; --text: #e6e8ec; --muted: #9aa1ad; --line: #2c323b;
    --track: #2c323b; --ok: #4d94f0; --warn: #e8a41c; --crit: #f05a5a;
    --ok-text: #7fb2f5; --warn-text: #f0bb4d; --crit-text: #ff8a8a;
    --crit-bg: #3a1f22; --good: #5cc377;
  }
}
* { box-sizing: border-box; }
body {
  margin: 0; padding: 2rem 1.25rem 3rem; background: var(--bg); color: var(--text);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
    sans-serif;
}
main { max-width: 60rem; margin: 0 auto; }
header h1 { margin: 0; font-size: 1.5rem; font-weight: 650; letter-spacing: -0.01em; }
header p, .muted { color: var(--muted); }
header p { margin: 0.25rem 0 1.5rem; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 0.85em; }
.org {
  background: var(--card); border: 1px solid var(--line); border-radius: 12px;
  padding: 1.1rem 1.35rem 1.2rem; margin: 0 0 1rem; box-shadow: 0 1px 2px rgb(0 0 0 / 5%);
}
.org-head { display: flex; flex-wrap: wrap; align-items: baseline; gap: 0.25rem 0.75rem; }
.org h2 { margin: 0; font-size: 1.15rem; font-weight: 650; }
.org-head .mono { color: var(--muted); }
.poll { margin: 0.35rem 0 0.9rem; }
.poll .ok { color: var(--good); font-weight: 600; }
.poll .waiting { color: var(--muted); font-style: italic; }
.failure {
  margin: 0.35rem 0 0.9rem; padding: 0.5rem 0.75rem; border-radius: 8px;
  background: var(--crit-bg); color: var(--crit-text);
}
.failure strong { font-weight: 650; }
.failure .error { display: block; overflow-wrap: anywhere; }
.org > :last-child { margin-bottom: 0; }
.windows { display: grid; grid-template-columns: minmax(8rem, 11rem) 1fr 10rem;
  gap: 0.55rem 1rem; align-items: center; margin: 0; }
.windows dt { font-weight: 550; overflow-wrap: anywhere; }
.windows dd { margin: 0; }
.windows .reading { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.track { height: 0.8rem; background: var(--track); border-radius: 999px; overflow: hidden; }
.fill { display: block; height: 100%; border-radius: 999px; background: var(--ok); }
.fill.warning { background: var(--warn); }
.fill.critical { background: var(--crit); }
.track.over { outline: 2px solid var(--crit); outline-offset: 1px; }
.pct { font-weight: 650; }
.pct.normal { color: var(--ok-text); }
.pct.warning { color: var(--warn-text); }
.pct.critical { color: var(--crit-text); }
.level { font-size: 0.75rem; font-weight: 650; text-transform: uppercase;
  letter-spacing: 0.04em; margin-left: 0.35rem; }
.resets { display: block; color: var(--muted); font-size: 0.85rem; }
.extra { margin: 0.9rem 0 0; padding-top: 0.7rem; border-top: 1px solid var(--line); }
.empty { color: var(--muted); margin: 0; }
footer { margin-top: 2rem; color: var(--muted); font-size: 0.9rem; }
footer h2 { font-size: 1rem; color: var(--text); margin: 1.25rem 0 0.4rem; }
footer ul { margin: 0; padding-left: 1.2rem; }
footer table { border-collapse: collapse; }
footer td { padding: 0.1rem 1rem 0.1rem 0; vertical-align: top; }
a { color: var(--ok-text); }
@media (max-width: 36rem) {
  .windows { grid-template-columns: 1fr auto; }
  .windows dd.bar { grid-column: 1 / -1; grid-row: auto; }
}
"""


def refresh_seconds(config: Config) -> int:
    """The page's auto-refresh period: the poll interval, kept within 5..60 s."""
    interval = config.poll.interval_seconds
    return round(min(max(interval, MIN_REFRESH_SECONDS), MAX_REFRESH_SECONDS))


def level(ratio: float) -> str:
    """`normal`, `warning` (>= 80 %) or `critical` (>= 95 %), as the alert rules count."""
    if ratio >= CRITICAL_RATIO:
        return "critical"
    if ratio >= WARNING_RATIO:
        return "warning"
    return "normal"


def render_window(window: UsageWindow, now: float, id_prefix: str = "w") -> str:
    name = escape(window.name)
    label_id = escape(f"{id_prefix}-{window.name}")
    if window.resets_at is None:
        resets = "no reset time"
    elif window.resets_at <= now:
        resets = "resetting now"
    else:
        resets = f"resets in {format_duration(window.resets_at - now)}"
    if window.utilization is None:
        return (
            f'<dt>{name}</dt><dd class="bar"><div class="track"></div></dd>'
            f'<dd class="reading"><span class="pct muted">no value</span>'
            f'<span class="resets">{resets}</span></dd>'
        )
    percent = window.utilization * 100
    shown = f"{percent:.1f}"
    width = min(max(percent, 0.0), 100.0)
    state = level(window.utilization)
    tag = "" if state == "normal" else f'<span class="level">{state}</span>'
    over = " over" if percent > 100 else ""
    return (
        f'<dt id="{label_id}">{name}</dt>'
        f'<dd class="bar"><div class="track{over}" role="progressbar" '
        f'aria-labelledby="{label_id}" aria-valuemin="0" aria-valuemax="100" '
        f'aria-valuenow="{width:.1f}" aria-valuetext="{shown}% used, {state}" '
        f'data-percent="{shown}">'
        f'<span class="fill {state}" style="width: {width:.1f}%"></span></div></dd>'
        f'<dd class="reading"><span class="pct {state}">{shown}%</span>{tag}'
        f'<span class="resets">{resets}</span></dd>'
    )


def render_poll(state: OrgState, now: float) -> str:
    if state.last_result is None or state.last_poll_end is None:
        return '<p class="poll"><span class="waiting">waiting for first poll</span></p>'
    age = f"{format_duration(now - state.last_poll_end)} ago"
    if state.up:
        return f'<p class="poll">Last poll: <span class="ok">success, {age}</span></p>'
    since = ""
    if state.last_success is not None:
        since = f" Last success {format_duration(now - state.last_success)} ago."
    elif state.snapshot is None:
        since = " No successful poll yet."
    error = escape(state.last_error or "no message")
    return (
        f'<div class="failure" role="status">Last poll: <strong>failed: '
        f"{escape(state.last_result.value)}, {age}</strong>."
        f'{escape(since)}<span class="error">{error}</span></div>'
    )


def render_org(state: OrgState, now: float) -> str:
    target = state.target
    parts = [
        f'<section class="org" aria-labelledby="org-{escape(target.uuid)}">',
        '<div class="org-head">',
        f'<h2 id="org-{escape(target.uuid)}">{escape(target.name)}</h2>',
        f'<span class="mono">{escape(target.uuid)}</span>',
    ]
    if target.origin != "config":
        parts.append(f'<span class="muted">discovered via {escape(target.origin)}</span>')
    parts.append("</div>")
    parts.append(render_poll(state, now))
    snapshot = state.snapshot
    if snapshot is not None:
        if snapshot.windows:
            parts.append('<dl class="windows">')
            parts.extend(render_window(w, now, f"w-{target.uuid}") for w in snapshot.windows)
            parts.append("</dl>")
        else:
            parts.append('<p class="empty">No usage window reported.</p>')
        extra = format_extra(snapshot.extra)
        extra_text = "not reported" if extra == "-" else escape(extra)
        parts.append(f'<p class="extra">Extra credits: <strong>{extra_text}</strong></p>')
    parts.append("</section>")
    return "".join(parts)


def render_footer() -> str:
    routes = "".join(
        f"<tr><td><code>{method}</code></td><td><code>{escape(path)}</code></td>"
        f'<td class="muted">{name}</td></tr>'
        for name, method, path in PROXY_ROUTES
    )
    return (
        "<footer><h2>Endpoints</h2><ul>"
        '<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>'
        '<li><a href="/healthz">/healthz</a>: liveness</li>'
        '<li><a href="/readyz">/readyz</a>: ready once every org has been polled</li>'
        "</ul><h2>Proxy routes</h2>"
        "<p>Forwarded to the upstream with the caller's own credentials.</p>"
        f"<table>{routes}</table>"
        f"<p>monitor {escape(__version__)}</p></footer>"
    )


def render_status(states: Iterable[OrgState], now: float, config: Config) -> str:
    """The whole status page for these org states, as of `now` (Unix seconds)."""
    ordered = sorted(states, key=lambda s: (s.target.name, s.target.uuid))
    refresh = refresh_seconds(config)
    interval = config.poll.interval_seconds
    count = len(ordered)
    summary = (
        f"{count} organization{'s' if count != 1 else ''}, polled every {interval:g} s; "
        f"this page refreshes every {refresh} s. "
        f"Updated {datetime.fromtimestamp(now, UTC):%Y-%m-%d %H:%M:%S} UTC."
    )
    body = "".join(render_org(s, now) for s in ordered) or (
        '<p class="empty">No organization configured or discovered yet.</p>'
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="refresh" content="{refresh}">'
        "<title>Claude usage monitor</title>"
        f"<style>{_STYLE}</style></head><body><main>"
        f"<header><h1>Claude usage</h1><p>{escape(summary)}</p></header>"
        f"{body}{render_footer()}</main></body></html>\n"
    )


class StatusPage:
    """The `/` handler: the page rendered from the store, the clock and the running config."""

    def __init__(self, store: UsageStore, config: ConfigSource, clock: Callable[[], float]) -> None:
        self._store = store
        self._config = config
        self._clock = clock

    async def handle(self, request: web.Request) -> web.Response:
        page = render_status(self._store, self._clock(), self._config.current)
        return web.Response(
            text=page,
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "no-store"},
        )
