"""A real `monitor run` polling (and proxying) usage payloads a careless or hostile
upstream could send, one org per payload: thousands of keys, huge, negative and
non-finite numbers, strings and booleans where numbers belong, deep nesting, bytes that
are not UTF-8, a top-level array, an empty object, `null`.

For each, the poll's result is the one the README's results table gives ("success: 200
with a JSON object"; "invalid_response: not JSON, ..., JSON that is not an object"), the
window bound (`[poll] max_windows_per_org`, default 64) and the window-name bound hold,
the same payload relayed by the proxy reaches its caller byte for byte, and afterwards
the daemon still runs, `/metrics` passes promtool and the strict OpenMetrics parser, and
the status page answers.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from tests.support.config import write_config
from tests.support.hostile import HostileUpstream, answer, payload, raw, stopped_cleanly
from tests.support.metrics import Samples, parse_metrics, value
from tests.support.net import free_port
from tests.support.process import MonitorProcess, status_200
from tests.support.tools import promtool_check_metrics
from tests.support.upstream import AUTH_A, TOKEN_A

StartMonitor = Callable[..., MonitorProcess]
Check = Callable[[Samples, str], list[str]]
MAX_WINDOWS = 64  # `[poll] max_windows_per_org`'s default: the config leaves it out
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
WINDOW = {"utilization": 25.0, "resets_at": "2026-01-01T00:00:00Z"}


def windows(samples: Samples, org: str) -> dict[str, float]:
    """The org's exported utilization, by window."""
    found = samples.get("claude_usage_utilization_ratio", {})
    return {dict(ls)["window"]: v for ls, v in found.items() if dict(ls)["org"] == org}


def window_is(name: str, ratio: float | None) -> Check:
    """The org exports window `name` with this utilization (None: no utilization series)."""

    def check(samples: Samples, org: str) -> list[str]:
        got = windows(samples, org).get(name)
        return [] if got == ratio else [f"window {name}: utilization {got}, expected {ratio}"]

    return check


def windows_are(names: set[str]) -> Check:
    def check(samples: Samples, org: str) -> list[str]:
        got = set(windows(samples, org))
        return [] if got == names else [f"windows {sorted(got)[:5]}..., expected {names}"]

    return check


def extra_is(sample: str, expected: float | None) -> Check:
    def check(samples: Samples, org: str) -> list[str]:
        got = value(samples, sample, org=org)
        return [] if got == expected else [f"{sample} {got}, expected {expected}"]

    return check


def bounded_windows(total: int) -> Check:
    """Bound: at most `max_windows_per_org` windows exported; the rest counted dropped."""

    def check(samples: Samples, org: str) -> list[str]:
        kept = len(windows(samples, org))
        dropped = value(samples, "claude_usage_windows_dropped", org=org)
        if kept == MAX_WINDOWS and dropped == total - MAX_WINDOWS:
            return []
        return [f"{total} windows: {kept} exported, {dropped} counted dropped (bound 64)"]

    return check


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes
    result: str  # the poll's result, as the README's results table gives it
    checks: tuple[Check, ...] = field(default=())

    @property
    def org_uuid(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"hostile-payload:{self.name}"))


def js(document: object) -> bytes:
    return json.dumps(document).encode()


def nested(depth: int) -> bytes:
    """A usage object whose one extra field is `depth` arrays deep (within 1 MiB)."""
    return b'{"five_hour": {"utilization": 5}, "deep": ' + b"[" * depth + b"]" * depth + b"}"


CASES = [
    Case(
        "thousands_of_windows",
        js({f"codename_{i}": WINDOW for i in range(3000)}),
        "success",
        (bounded_windows(3000),),
    ),
    Case(
        "thousands_of_other_keys",
        js({"five_hour": WINDOW} | {f"k{i}": i for i in range(20_000)}),
        "success",
        (windows_are({"five_hour"}),),
    ),
    Case(
        "window_names_past_the_label_bound",
        js({"w" * 65: WINDOW, 'quo"te': WINDOW, "new\nline": WINDOW, "ok.name-1": WINDOW}),
        "success",
        (windows_are({"ok.name-1"}),),
    ),
    Case(
        "huge_numbers",
        b'{"five_hour": {"utilization": 1e308}, "extra_usage": {"is_enabled": true, '
        b'"monthly_limit": 1' + b"0" * 400 + b', "used_credits": 1e400}}',
        "success",
        (
            window_is("five_hour", 1e306),
            extra_is("claude_usage_extra_monthly_limit_credits", None),
            extra_is("claude_usage_extra_used_credits", None),
        ),
    ),
    Case(
        "an_integer_of_5000_digits",
        b'{"five_hour": {"utilization": 5}, "extra_usage": {"used_credits": 1'
        + b"0" * 5000
        + b"}}",
        "success",  # a JSON object: the absurd field is dropped, not the answer
        (window_is("five_hour", 0.05), extra_is("claude_usage_extra_used_credits", None)),
    ),
    Case(
        "negative_numbers",
        js(
            {
                "five_hour": {"utilization": -50},
                "extra_usage": {"is_enabled": True, "monthly_limit": -1, "used_credits": -2},
            }
        ),
        "success",
        (window_is("five_hour", -0.5), extra_is("claude_usage_extra_used_credits", -2.0)),
    ),
    Case(
        "non_finite_numbers",
        b'{"five_hour": {"utilization": NaN}, "seven_day": {"utilization": -Infinity}}',
        "success",
        (window_is("five_hour", None), window_is("seven_day", None)),
    ),
    Case(
        "numbers_as_strings",
        js(
            {
                "five_hour": {"utilization": "50", "resets_at": "2026-01-01T00:00:00Z"},
                "extra_usage": {"is_enabled": "true", "used_credits": "100"},
            }
        ),
        "success",
        (window_is("five_hour", None), extra_is("claude_usage_extra_used_credits", None)),
    ),
    Case(
        "booleans_where_numbers_belong",
        js(
            {
                "five_hour": {"utilization": True, "resets_at": False},
                "extra_usage": {"is_enabled": True, "monthly_limit": True, "used_credits": False},
            }
        ),
        "success",
        (window_is("five_hour", None), extra_is("claude_usage_extra_used_credits", None)),
    ),
    Case(
        "objects_where_numbers_belong",
        js({"five_hour": {"utilization": {"value": 5}, "resets_at": [1]}, "seven_day": WINDOW}),
        "success",
        (window_is("five_hour", None), window_is("seven_day", 0.25)),
    ),
    Case(
        "a_lone_surrogate_in_a_string",
        js({"five_hour": WINDOW, "extra_usage": {"used_credits": 5, "currency": "\ud800"}}),
        "success",
        (window_is("five_hour", 0.25), extra_is("claude_usage_extra_used_credits", 5.0)),
    ),
    Case("nested_a_hundred_deep", nested(100), "success", (window_is("five_hour", 0.05),)),
    # Deeper than Python's JSON parser goes (about a thousand levels): not read as JSON.
    Case("nested_100000_deep", nested(100_000), "invalid_response"),
    Case("not_utf_8", b'{"five_hour": {"utilization": 5, "x": "\xff\xfe"}}', "invalid_response"),
    Case("a_top_level_array", js([{"five_hour": WINDOW}]), "invalid_response"),
    Case("a_top_level_number", b"42", "invalid_response"),
    Case("null", b"null", "invalid_response"),
    Case("an_empty_body", b"", "invalid_response"),
    Case("an_empty_object", b"{}", "success", (windows_are(set()),)),
]


def usage_path(org_uuid: str) -> str:
    return f"/api/organizations/{org_uuid}/usage"


async def relay(session: aiohttp.ClientSession, base: str, case: Case) -> str | None:
    """Proxy the case's usage read (a passive refresh of a polled org); a problem, if any."""
    async with session.get(base + usage_path(case.org_uuid), headers=AUTH_A) as response:
        body = await response.read()
    if response.status != 200 or body != case.body:
        return f"{case.name}: relayed {response.status}, {len(body)} of {len(case.body)} bytes"
    return None


@pytest.mark.tool
async def test_hostile_payloads_get_the_documented_result_and_the_daemon_goes_on(
    start_monitor: StartMonitor, tmp_path: Path
) -> None:
    async with HostileUpstream() as upstream:
        upstream.behaviours = {usage_path(case.org_uuid): payload(case.body) for case in CASES}
        # One more org, whose upstream errors with a message meant to break the page.
        hostile_error = js({"error": {"message": '<script>alert("x")</script>\n\ud800'}})
        error_org = str(uuid.uuid5(uuid.NAMESPACE_URL, "hostile-payload:error"))
        upstream.behaviours[usage_path(error_org)] = raw(answer(hostile_error, "500 Oops"))
        orgs = [{"uuid": c.org_uuid, "name": c.name, "token_env": "TOKEN_A"} for c in CASES]
        orgs.append({"uuid": error_org, "name": "error_message", "token_env": "TOKEN_A"})
        port = free_port()
        config = write_config(
            tmp_path / "config.toml",
            upstream.url,
            orgs,
            server={"port": port},
            upstream={"timeout_seconds": 10},
            poll={"interval_seconds": 60, "max_interval_seconds": 120},
        )
        monitor = start_monitor(["run", "--config", str(config)], {"TOKEN_A": TOKEN_A})
        base = f"http://127.0.0.1:{port}"
        await monitor.wait_until_async(f"{base}/readyz", status_200)  # every org polled once
        async with aiohttp.ClientSession() as session:
            relayed = await asyncio.gather(*(relay(session, base, case) for case in CASES))
            (text, openmetrics, page), problems = await _read_all(session, base)
        log = await stopped_cleanly(monitor)
    problems += [problem for problem in relayed if problem is not None]
    samples = parse_metrics(text)
    for case in CASES:
        counted = value(samples, "claude_usage_polls_total", org=case.name, result=case.result)
        if counted != 1:
            results = {
                dict(ls)["result"]: v
                for ls, v in samples["claude_usage_polls_total"].items()
                if dict(ls)["org"] == case.name and v
            }
            problems.append(f"{case.name}: polled {results}, expected {case.result}")
        for check in case.checks:
            problems += [f"{case.name}: {problem}" for problem in check(samples, case.name)]
    assert value(samples, "claude_usage_polls_total", org="error_message", result="server_error")
    # Each relay counted as the 200 its caller got (the passive refresh's own trouble, if
    # any, after the last byte, must not turn it into a 500).
    relays = value(samples, "claude_proxy_requests_total", endpoint="usage", code="200")
    problems += [] if relays == len(CASES) else [f"{relays} relays counted 200 of {len(CASES)}"]
    assert not problems, "\n".join(problems)
    checked = await promtool_check_metrics(text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # prometheus_client leaves its parser unannotated; strict, it raises on anything invalid.
    assert list(text_string_to_metric_families(openmetrics))  # type: ignore[no-untyped-call]
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "unexpected error" not in log, log


async def _read_all(session: aiohttp.ClientSession, base: str) -> tuple[list[str], list[str]]:
    """`/metrics` in both formats and the status page: their bodies, and a problem for
    each that did not answer 200."""
    texts, problems = [], []
    for path, headers in (
        ("/metrics", {}),
        ("/metrics", {"Accept": OPENMETRICS}),
        ("/", {}),
    ):
        async with session.get(base + path, headers=headers) as response:
            texts.append(await response.text())
            if response.status != 200:
                problems.append(f"GET {path} {headers}: {response.status} {texts[-1][:200]}")
    return texts, problems
