"""Text and JSON renderings for the command line (`check-config`, `usage`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from monitor.credentials import LiveCredential
from monitor.pace import Pace, format_ratio, window_pace
from monitor.schema import Config, OtlpConfig, ProxyConfig
from monitor.state import OrgState
from monitor.targets import configured_targets
from monitor.usage import ExtraUsage, UsageWindow


def format_duration(seconds: float) -> str:
    """A short human duration: `45s`, `12m`, `3h 05m`, `2d 04h`; negative means past."""
    if seconds < 0:
        return "now"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def format_money(amount: float | None, extra: ExtraUsage) -> str:
    if amount is None:
        return "-"
    places = extra.decimal_places if extra.decimal_places is not None else 2
    value = amount / 10**places
    return f"{value:.{places}f}" + (f" {extra.currency}" if extra.currency else "")


def format_extra(extra: ExtraUsage | None) -> str:
    if extra is None:
        return "-"
    if extra.is_enabled is False:
        return "off"
    used = format_money(extra.used_credits, extra)
    if extra.monthly_limit is None:
        return used
    return f"{used} / {format_money(extra.monthly_limit, extra)}"


def format_expiry(expires_at: float | None, now: float) -> str:
    """`expires in 2h 10m`, `expired 5m 00s ago`, or `no known expiry`."""
    if expires_at is None:
        return "no known expiry"
    if expires_at <= now:
        return f"expired {format_duration(now - expires_at)} ago"
    return f"expires in {format_duration(expires_at - now)}"


def credential_summary(credential: LiveCredential, now: float) -> str:
    """How an org is authenticated, never the secret: kind, length, source, expiry."""
    current, spec = credential.current, credential.spec
    length = len(current.secret.get_secret_value())
    expiry = format_expiry(credential.expires_at, now)
    return f"{current.kind} ******** ({length} chars, {spec.kind} {spec.location()}; {expiry})"


def proxy_summary(proxy: ProxyConfig) -> str:
    """The proxy's own settings, one line: where the OAuth routes go, cache, shield."""
    cache = "usage cache off"
    if proxy.usage_cache_seconds > 0:
        cache = (
            f"usage cache {proxy.usage_cache_seconds:g} s (at most "
            f"{proxy.usage_cache_max_entries} answers, {proxy.usage_cache_max_bytes} bytes)"
        )
    shield = "on" if proxy.shield_rate_limits else "off"
    return f"proxy:    oauth routes to {proxy.oauth_base_url}, {cache}, rate-limit shield {shield}"


def print_config(config: Config, source: str, warnings: Sequence[str], out: TextIO) -> None:
    up, poll, server = config.upstream, config.poll, config.server
    lines = [
        f"{source}: OK",
        f"server:   {server.host}:{server.port}",
        f"upstream: {up.base_url} (timeout {up.timeout_seconds:g} s, user agent {up.user_agent!r})",
        f"poll:     every {poll.interval_seconds:g} s, up to {poll.max_interval_seconds:g} s "
        f"while idle, {poll.concurrency} at once" + (f", shard {poll.shard}" if poll.shard else ""),
        proxy_summary(config.proxy),
        f"orgs ({len(config.orgs)}):",
    ]
    now = time.time()
    for target in configured_targets(config):
        summary = credential_summary(target.credential, now)
        lines.append(f"  {target.name}  {target.uuid}  {summary}  {target.usage_url}")
    lines.append(f"accounts ({len(config.accounts)}):")
    for index, account in enumerate(config.accounts):
        base = account.base_url or up.base_url
        label = account.name or f"accounts[{index}]"
        summary = credential_summary(account.live_credential(label), now)
        lines.append(f"  {label}  {summary}  discovers via {base}{account.bootstrap_path}")
    lines.extend(otlp_summary(config.otlp))
    lines.extend(f"warning: {w}" for w in warnings)
    out.write("\n".join(lines) + "\n")


def otlp_summary(otlp: OtlpConfig | None) -> list[str]:
    """`[otlp]` as check-config prints it: header values masked to their length."""
    if otlp is None:
        return ["otlp:     off"]
    lines = [
        (
            f"otlp:     push to {otlp.push_endpoint} every {otlp.interval_seconds:g} s "
            f"({otlp.push_temporality})"
        )
    ]
    for name, header in otlp.headers.items():
        length = len(header.value.get_secret_value())
        lines.append(f"  header {name}: ******** ({length} chars, env {header.env})")
    for name, value in otlp.resource_attributes.items():
        lines.append(f"  resource {name}={value}")
    return lines


def pace_of(state: OrgState, window: UsageWindow, now: float) -> Pace | None:
    """The window's pace (`monitor.pace`), with its documented or learned length."""
    length = state.trends.length(window.name)
    return window_pace(window.utilization, window.resets_at, length, now)


def format_pace(pace: Pace | None) -> tuple[str, str]:
    """The PACE and PROJECTION cells: `1.3x` and `100% in 1h 50m`, `ends at 62%` or
    `at 100%`; `-` where the pace is not known."""
    if pace is None:
        return "-", "-"
    if pace.until_full == 0.0:
        projection = "at 100%"
    elif pace.until_full is not None:
        projection = f"100% in {format_duration(pace.until_full)}"
    else:
        projection = f"ends at {pace.projected * 100:.0f}%"
    return f"{format_ratio(pace.ratio)}x", projection


def usage_table(states: Sequence[OrgState], now: float | None = None) -> str:
    now = time.time() if now is None else now
    rows: list[tuple[str, ...]] = [
        ("ORG", "WINDOW", "USED", "RESETS IN", "PACE", "PROJECTION", "EXTRA CREDITS")
    ]
    problems: list[str] = []
    for state in sorted(states, key=lambda s: s.target.name):
        snapshot = state.snapshot
        if not state.up:
            problems.append(f"{state.target.name}: {state.last_result}: {state.last_error}")
        if snapshot is None:
            continue
        extra = format_extra(snapshot.extra)
        windows = [w for w in snapshot.windows if w.utilization is not None or w.resets_at]
        if not windows:
            rows.append((state.target.name, "(no active window)", "-", "-", "-", "-", extra))
        for index, window in enumerate(windows):
            used = "-" if window.utilization is None else f"{window.utilization * 100:.1f}%"
            resets = "-" if window.resets_at is None else format_duration(window.resets_at - now)
            pace, projection = format_pace(pace_of(state, window, now))
            shown = extra if index == 0 else ""
            rows.append((state.target.name, window.name, used, resets, pace, projection, shown))
    credentials: list[tuple[str, ...]] = [("ORG", "CREDENTIAL", "EXPIRY")]
    for state in sorted(states, key=lambda s: s.target.name):
        credential = state.target.credential
        where = f"{credential.spec.kind} {credential.spec.location()}"
        credentials.append((state.target.name, where, format_expiry(credential.expires_at, now)))
    text = [*_table(rows), "", *_table(credentials)]
    if problems:
        text += ["", "failed:"] + [f"  {p}" for p in problems]
    return "\n".join(text)


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def window_report(state: OrgState, window: UsageWindow, now: float) -> dict[str, Any]:
    """One window in `usage --json`: its reading, its length where known, and its pace
    (null where not known; `full_at` only when 100 % comes before the reset)."""
    pace = pace_of(state, window, now)
    full_at = None
    if pace is not None and pace.until_full is not None:
        full_at = _iso(round(now + pace.until_full))
    return {
        "utilization_percent": None
        if window.utilization is None
        else round(window.utilization * 100, 4),
        "resets_at": _iso(window.resets_at),
        "length_seconds": state.trends.length(window.name),
        "pace_ratio": None if pace is None else round(pace.ratio, 4),
        "projected_percent_at_reset": None if pace is None else round(pace.projected * 100, 2),
        "full_at": full_at,
    }


def usage_report(states: Sequence[OrgState], now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    orgs = []
    for state in sorted(states, key=lambda s: s.target.name):
        snapshot = state.snapshot
        extra = snapshot.extra if snapshot else None
        orgs.append(
            {
                "org": state.target.name,
                "org_uuid": state.target.uuid,
                "result": state.last_result.value if state.last_result else None,
                "error": state.last_error,
                "windows": {
                    w.name: window_report(state, w, now)
                    for w in (snapshot.windows if snapshot else ())
                },
                "credential": {
                    "source": state.target.credential.spec.kind,
                    "where": state.target.credential.spec.location(),
                    "expires_at": _iso(state.target.credential.expires_at),
                },
                "extra_usage": None
                if extra is None
                else {
                    "is_enabled": extra.is_enabled,
                    "monthly_limit": extra.monthly_limit,
                    "used_credits": extra.used_credits,
                    "currency": extra.currency,
                    "decimal_places": extra.decimal_places,
                },
            }
        )
    return {"orgs": orgs}
