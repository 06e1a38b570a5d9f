"""The status page at `/`: every org's windows, credits and poll health, as plain HTML.

`render_status` is a pure function of the store's states, the clock and the config, so
the page is tested with plain calls; the handler only gathers those three (and whether
the reader asked for reloads with `?refresh=on`). The page needs no JavaScript and no
external asset: inline CSS, a `<meta refresh>` only when asked for, and every string
from the upstream or the config goes through `html.escape`.

Layout: each usage window is one block (a `li.window`) whose children stack: its name,
its `<meter>`, then its percentage and reset time, then where it is heading
(`window_view`: a sparkline of its recent utilization and its pace), each at the full
width of the block. The blocks sit in a grid that gives one column on a phone and more
as the screen widens.
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
from monitor.trend import Trends
from monitor.usage import UsageWindow
from monitor.window_view import STYLE as WINDOW_VIEW_STYLE
from monitor.window_view import pace_line, sparkline

WARNING_RATIO = 0.80  # the same thresholds as ClaudeUsageWindowHigh / ...Critical
CRITICAL_RATIO = 0.95
# The same as ClaudeUsageCredentialExpiringSoon: a credential expiring within 30 minutes.
CREDENTIAL_SOON_SECONDS = 30 * 60
MIN_REFRESH_SECONDS = 5
MAX_REFRESH_SECONDS = 60

# The proxy's routes as a person types them (memory needs its query parameter).
PROXY_ROUTES: tuple[tuple[str, str, str], ...] = tuple(
    (
        route.name,
        route.method,
        route.path + ("?project_uuid=<uuid>" if route.name == "memory" else ""),
    )
    for route in ROUTES
)

# Both themes keep every text colour at 4.5:1 or more against the surfaces it sits on
# (measured in Chromium by tests/system/test_status_browser.py) and every bar fill at 3:1
# or more against its track (WCAG AA for text and for graphics). No low/high on the meters:
# browsers would colour them by their own rule; the class carries the alert level.
_STYLE = """
:root {
  color-scheme: light dark;
  --bg: #f4f5f7; --card: #ffffff; --tile: #f8f9fb; --text: #1d2330; --muted: #5d6471;
  --line: #dde1e7; --track: #dfe3ea; --ok: #2f6fd1; --warn: #b06a00; --crit: #c92a2a;
  --ok-text: #1d5fb4; --warn-text: #8a5600; --crit-text: #b42323; --crit-bg: #fdeceb;
  --good: #1f6f35;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #121418; --card: #1b1f26; --tile: #20252d; --text: #e8eaee; --muted: #a3aab6;
    --line: #323844; --track: #3a414d; --ok: #5a9cf2; --warn: #e0a020; --crit: #f06262;
    --ok-text: #8dbaf7; --warn-text: #f2c25a; --crit-text: #ff9b9b; --crit-bg: #3b1d21;
    --good: #6fd08a;
  }
}
* { box-sizing: border-box; }
body {
  margin: 0; padding: 1.5rem 1rem 3rem; background: var(--bg); color: var(--text);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
    sans-serif;
}
main { max-width: 60rem; margin: 0 auto; }
h1, h2, .window-name, .uuid, .failure .error { overflow-wrap: anywhere; }
header h1 { margin: 0; font-size: 1.5rem; font-weight: 650; letter-spacing: -0.01em; }
header p, .muted { color: var(--muted); }
header p { margin: 0.25rem 0 0; }
header { margin-bottom: 1.25rem; }
a { color: var(--ok-text); }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 0.85em; }
.org {
  background: var(--card); border: 1px solid var(--line); border-radius: 12px;
  padding: 1rem 1.25rem 1.1rem; margin: 0 0 1rem; box-shadow: 0 1px 2px rgb(0 0 0 / 5%);
}
.org.failing { border-color: var(--crit); border-left-width: 6px; }
.org-head { display: flex; flex-wrap: wrap; align-items: baseline; gap: 0.2rem 0.6rem; }
.org h2 { margin: 0; font-size: 1.15rem; font-weight: 650; min-width: 0; }
.badge { font-size: 0.75rem; font-weight: 700; text-transform: uppercase;
  letter-spacing: 0.04em; padding: 0.05rem 0.45rem; border-radius: 999px;
  border: 1px solid currentcolor; }
.badge.ok { color: var(--good); }
.badge.failing { color: var(--crit-text); background: var(--crit-bg); }
.badge.waiting { color: var(--muted); }
.org-meta { flex-basis: 100%; margin: 0; color: var(--muted); font-size: 0.9rem; }
.poll { margin: 0.35rem 0 0.8rem; }
.poll .ok { color: var(--good); font-weight: 600; }
.poll .waiting { color: var(--muted); font-style: italic; }
.failure {
  margin: 0.5rem 0 0.8rem; padding: 0.5rem 0.75rem; border-radius: 8px;
  background: var(--crit-bg); color: var(--crit-text);
}
.failure strong { font-weight: 650; }
.credential { margin: -0.4rem 0 0.8rem; color: var(--muted); }
.credential.soon { color: var(--warn-text); }
.credential.expired {
  padding: 0.5rem 0.75rem; border-radius: 8px; background: var(--crit-bg);
  color: var(--crit-text); margin-top: 0;
}
.failure .error { display: block; }
.org > :last-child { margin-bottom: 0; }
.windows {
  list-style: none; margin: 0; padding: 0; display: grid; gap: 0.75rem;
  grid-template-columns: repeat(auto-fill, minmax(min(100%, 15rem), 1fr));
}
.window {
  display: flex; flex-direction: column; gap: 0.35rem; min-width: 0;
  padding: 0.6rem 0.75rem 0.65rem; background: var(--tile); border: 1px solid var(--line);
  border-radius: 8px;
}
.window-name { font-weight: 600; }
meter, .no-meter {
  display: block; width: 100%; height: 0.75rem; margin: 0; border: 0;
  border-radius: 999px; background: var(--track); appearance: none;
}
meter::-webkit-meter-bar { height: 0.75rem; border: 0; border-radius: 999px;
  background: var(--track); }
meter::-webkit-meter-optimum-value { border-radius: 999px; background: var(--ok); }
meter.warning::-webkit-meter-optimum-value { background: var(--warn); }
meter.critical::-webkit-meter-optimum-value { background: var(--crit); }
meter::-moz-meter-bar { border-radius: 999px; background: var(--ok); }
meter.warning::-moz-meter-bar { background: var(--warn); }
meter.critical::-moz-meter-bar { background: var(--crit); }
meter.over { outline: 2px solid var(--crit); outline-offset: 2px; }
.reading { margin: 0; display: flex; flex-wrap: wrap; align-items: baseline;
  gap: 0 0.5rem; font-variant-numeric: tabular-nums; }
.pct { font-weight: 650; font-size: 1.05rem; }
.pct.normal { color: var(--ok-text); }
.pct.warning { color: var(--warn-text); }
.pct.critical { color: var(--crit-text); }
.level { font-size: 0.75rem; font-weight: 700; text-transform: uppercase;
  letter-spacing: 0.04em; }
.level.warning { color: var(--warn-text); }
.level.critical { color: var(--crit-text); }
.resets { color: var(--muted); font-size: 0.85rem; margin-left: auto; }
.extra { margin: 0.9rem 0 0; padding-top: 0.7rem; border-top: 1px solid var(--line); }
.empty { color: var(--muted); margin: 0; }
footer { margin-top: 2rem; color: var(--muted); font-size: 0.9rem; }
footer h2 { font-size: 1rem; color: var(--text); margin: 1.25rem 0 0.4rem; }
footer ul { margin: 0; padding-left: 1.2rem; }
footer table { border-collapse: collapse; }
footer th { text-align: left; font-weight: 600; color: var(--text); }
footer th, footer td { padding: 0.1rem 1rem 0.1rem 0; vertical-align: top; }
footer td code { overflow-wrap: anywhere; }
@media (max-width: 30rem) {
  body { padding: 1rem 0.6rem 2rem; }
  .org { padding: 0.85rem 0.8rem 0.9rem; }
  footer th, footer td { padding-right: 0.5rem; }
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


def _resets(window: UsageWindow, now: float) -> str:
    if window.resets_at is None:
        return "no reset time"
    if window.resets_at <= now:
        return "resetting now"
    return f"resets in {format_duration(window.resets_at - now)}"


def render_window(
    window: UsageWindow,
    now: float,
    org_id: str,
    index: int,
    trends: Trends | None = None,
    org_name: str = "",
) -> str:
    """One window's block: its name, its meter, then percentage, level and reset time,
    then its recent utilization and pace from the org's `trends`.

    The meter's accessible name is the org's heading and the window's name together
    ("acme five_hour"); its value is clamped to 0..100, the true number is in its
    `aria-valuetext` and on screen.
    """
    name_id = f"{org_id}-w{index}"
    head = (
        f'<li class="window"><span class="window-name" id="{name_id}">{escape(window.name)}</span>'
    )
    resets = f'<span class="resets">{_resets(window, now)}</span>'
    if window.utilization is None:
        return (
            f'{head}<div class="no-meter" aria-hidden="true"></div>'
            f'<p class="reading"><span class="pct muted">no value</span>{resets}</p></li>'
        )
    trends = trends if trends is not None else Trends()
    length = trends.length(window.name)
    trend = trends.get(window.name)
    points = trend.history.points() if trend is not None else []
    percent = window.utilization * 100
    shown = f"{percent:.1f}%"
    state = level(window.utilization)
    word = "" if state == "normal" else state
    over = " over" if percent > 100 else ""
    meter = (
        f'<meter class="{state}{over}" min="0" max="100" '
        f'value="{min(max(percent, 0.0), 100.0):.1f}" aria-labelledby="{org_id} {name_id}" '
        f'aria-valuetext="{shown} used{", " + word if word else ""}"></meter>'
    )
    tag = f' <span class="level {state}">{word}</span>' if word else ""
    name = f"{org_name} {window.name}".strip()
    heading = sparkline(window, points, length, now, state, name) + pace_line(window, length, now)
    return (
        f'{head}{meter}<p class="reading"><span class="pct {state}">{shown}</span>{tag} '
        f"{resets}</p>{heading}</li>"
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


def render_credential(state: OrgState, now: float) -> str:
    """When the org's credential expires, where its source says; the expired case in red
    (nothing is sent with it) and the last half hour in amber, as the alert counts."""
    credential = state.target.credential
    expires_at = credential.expires_at
    if expires_at is None:
        return ""
    what = "Token" if credential.spec.presented == "bearer" else "Session key"
    source = escape(credential.spec.kind)
    if expires_at <= now:
        return (
            f'<p class="credential expired" role="status"><strong>{what} expired '
            f"{format_duration(now - expires_at)} ago</strong>: nothing is sent with it; "
            f"waiting for its source ({source}) to bring a renewed one.</p>"
        )
    soon = " soon" if expires_at - now < CREDENTIAL_SOON_SECONDS else ""
    word = " (soon)" if soon else ""
    return (
        f'<p class="credential{soon}">{what} expires in '
        f"{format_duration(expires_at - now)}{word}, from {source}.</p>"
    )


def health(state: OrgState) -> str:
    """The org's poll health in one word, shown beside its name: `ok`, `failing`, `waiting`."""
    if state.last_result is None:
        return "waiting"
    return "ok" if state.up else "failing"


def render_org(state: OrgState, now: float) -> str:
    target = state.target
    org_id = f"org-{escape(target.uuid)}"
    status = health(state)
    meta = f'<span class="mono uuid">{escape(target.uuid)}</span>'
    if target.origin != "config":
        meta += f" · discovered via {escape(target.origin)}"
    parts = [
        f'<section class="org {status}" aria-labelledby="{org_id}">',
        f'<div class="org-head"><h2 id="{org_id}">{escape(target.name)}</h2>',
        f'<span class="badge {status}">{status}</span>',
        f'<p class="org-meta">{meta}</p></div>',
        render_poll(state, now),
        render_credential(state, now),
    ]
    snapshot = state.snapshot
    if snapshot is not None:
        if snapshot.windows:
            parts.append(
                f'<ul class="windows" aria-label="usage windows of {escape(target.name)}">'
            )
            parts.extend(
                render_window(w, now, org_id, index, state.trends, target.name)
                for index, w in enumerate(snapshot.windows)
            )
            parts.append("</ul>")
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
        f"<td>{name}</td></tr>"
        for name, method, path in PROXY_ROUTES
    )
    return (
        "<footer><h2>Endpoints</h2><ul>"
        '<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>'
        '<li><a href="/healthz">/healthz</a>: liveness</li>'
        '<li><a href="/readyz">/readyz</a>: ready once every org has been polled</li>'
        "</ul><h2>Proxy routes</h2>"
        "<p>Forwarded to the upstream with the caller's own credentials.</p>"
        '<table><thead><tr><th scope="col">Method</th><th scope="col">Path</th>'
        f'<th scope="col">Route</th></tr></thead><tbody>{routes}</tbody></table>'
        f"<p>monitor {escape(__version__)}</p></footer>"
    )


def render_refresh(seconds: int, refresh: bool) -> str:
    """The auto-refresh line. A page that reloads on its own puts a keyboard or screen-reader
    user back at the top every time (WCAG 2.2.1), so it reloads only when the reader asks,
    and then the way to stop it is the first link on the page."""
    if refresh:
        return (
            f'<p class="refresh" role="status">This page reloads every {seconds} s. '
            '<a href="/">Stop auto-refresh</a></p>'
        )
    return (
        '<p class="refresh">This page shows the moment it was loaded. '
        f'<a href="/?refresh=on">Reload it every {seconds} s</a></p>'
    )


def render_status(
    states: Iterable[OrgState], now: float, config: Config, *, refresh: bool = False
) -> str:
    """The whole status page for these org states, as of `now` (Unix seconds).

    `refresh=True` adds a `<meta refresh>` at the poll interval (the reader asked for it
    with `?refresh=on`)."""
    ordered = sorted(states, key=lambda s: (s.target.name, s.target.uuid))
    seconds = refresh_seconds(config)
    interval = config.poll.interval_seconds
    count = len(ordered)
    summary = (
        f"{count} organization{'s' if count != 1 else ''}, polled every {interval:g} s. "
        f"Updated {datetime.fromtimestamp(now, UTC):%Y-%m-%d %H:%M:%S} UTC."
    )
    body = "".join(render_org(s, now) for s in ordered) or (
        '<p class="empty">No organization configured or discovered yet.</p>'
    )
    meta_refresh = f'<meta http-equiv="refresh" content="{seconds}">' if refresh else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f"{meta_refresh}<title>Claude usage monitor</title>"
        f"<style>{_STYLE}{WINDOW_VIEW_STYLE}</style></head><body><main>"
        f"<header><h1>Claude usage</h1><p>{escape(summary)}</p>"
        f"{render_refresh(seconds, refresh)}</header>"
        f"{body}{render_footer()}</main></body></html>\n"
    )


class StatusPage:
    """The `/` handler: the page rendered from the store, the clock and the running config."""

    def __init__(self, store: UsageStore, config: ConfigSource, clock: Callable[[], float]) -> None:
        self._store = store
        self._config = config
        self._clock = clock

    async def handle(self, request: web.Request) -> web.Response:
        refresh = request.query.get("refresh") == "on"  # the reader asked for reloads
        page = render_status(self._store, self._clock(), self._config.current, refresh=refresh)
        return web.Response(
            text=page,
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "no-store"},
        )
