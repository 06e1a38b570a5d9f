"""The status page at `/` as a pure rendering of org states: bars, levels, escaping,
times, extra credits, the refresh and the outline. (Over HTTP: `tests/app/`; in a real
browser: `tests/system/test_status_browser.py`.)"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from monitor.schema import Config
from monitor.state import OrgState, PollResult
from monitor.status import PROXY_ROUTES, render_status
from monitor.targets import OrgTarget
from monitor.usage import ExtraUsage, UsageSnapshot, UsageWindow, parse_usage
from tests.support.config import make_config
from tests.support.credentials import env_credential
from tests.support.status_page import Page
from tests.support.upstream import ORG_A, ORG_B, ORG_C

NOW = 1_800_000_000.0
CONFIG = make_config("http://127.0.0.1:9")


def org_state(
    name: str = "acme",
    uuid: str = ORG_A,
    *,
    payload: dict[str, Any] | None = None,
    result: PollResult | None = PollResult.SUCCESS,
    error: str | None = None,
    ended_ago: float = 12.0,
) -> OrgState:
    target = OrgTarget(
        uuid=uuid,
        name=name,
        base_url="http://127.0.0.1:9",
        usage_path="/api/organizations/{org_uuid}/usage",
        credential=env_credential(),
    )
    state = OrgState(target)
    if result is not None:
        state.last_result = result
        state.last_error = error
        state.last_poll_end = NOW - ended_ago
        if result is PollResult.SUCCESS:
            state.last_success = state.last_poll_end
    if payload is not None:
        state.snapshot = parse_usage(payload)
    return state


def window_payload(**percents: float | None) -> dict[str, Any]:
    return {
        name: {"utilization": percent, "resets_at": "2027-01-15T09:00:00+00:00"}
        for name, percent in percents.items()
    }


def render(*states: OrgState, config: Config = CONFIG) -> Page:
    return Page(render_status(list(states), NOW, config))


def test_bar_level_changes_at_80_and_95_percent() -> None:
    page = render(org_state(payload=window_payload(low=79.9, high=80.0, crit=95.0)))
    bars = page.bars()
    assert [bar["class"] for bar in bars] == ["normal", "warning", "critical"]
    assert [bar["value"] for bar in bars] == ["79.9", "80.0", "95.0"]
    assert [bar["aria-valuetext"] for bar in bars] == [
        "79.9% used",
        "80.0% used, warning",
        "95.0% used, critical",
    ]
    # not colour alone: the level is written out next to the number
    assert "high 80.0% warning" in page.text
    assert "crit 95.0% critical" in page.text
    assert "low 79.9% resets in" in page.text


def test_each_bar_is_a_meter_labelled_by_its_org_and_window() -> None:
    page = render(org_state(payload=window_payload(five_hour=12.0, seven_day=40.0)))
    bars = page.bars()
    assert [(bar["min"], bar["max"]) for bar in bars] == [("0", "100"), ("0", "100")]
    assert [bar["aria-labelledby"] for bar in bars] == [
        f"org-{ORG_A} org-{ORG_A}-w0",
        f"org-{ORG_A} org-{ORG_A}-w1",
    ]
    # the ids point at the org's heading and at each window's name
    assert page.find("h2", id=f"org-{ORG_A}")
    assert page.find("span", **{"class": "window-name", "id": f"org-{ORG_A}-w1"})
    assert "five_hour 12.0% resets in" in page.text


def test_bar_over_100_percent_is_clamped_but_shows_the_true_number() -> None:
    page = render(org_state(payload=window_payload(five_hour=110.0)))
    [bar] = page.bars()
    assert bar["value"] == "100.0"
    assert bar["max"] == "100"
    assert bar["aria-valuetext"] == "110.0% used, critical"
    assert "five_hour 110.0% critical" in page.text
    assert bar["class"].split() == ["critical", "over"]


def test_window_without_value_has_no_meter_and_says_so() -> None:
    page = render(org_state(payload=window_payload(five_hour=50.0, codename=None)))
    assert len(page.bars()) == 1
    assert "codename no value" in page.text


def test_time_until_reset() -> None:
    state = org_state()
    state.snapshot = UsageSnapshot(
        windows=(
            UsageWindow("soon", 0.5, NOW + 185),
            UsageWindow("later", 0.5, NOW + 2 * 86400 + 3 * 3600),
            UsageWindow("unused", 0.0, None),
        ),
        extra=None,
    )
    text = render(state).text
    assert "soon 50.0% resets in 3m 05s" in text
    assert "later 50.0% resets in 2d 03h" in text
    assert "unused 0.0% no reset time" in text


def test_hostile_org_name_and_error_message_are_escaped() -> None:
    name = '<script>alert("name")</script>'
    error = "HTTP 403: <img src=x onerror=alert(1)> & \"quoted\" 'single'"
    state = org_state(name, result=PollResult.FORBIDDEN, error=error)
    document = render_status([state], NOW, CONFIG)
    assert "<script" not in document
    assert "<img" not in document
    assert "&lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt;" in document
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; &quot;quoted&quot; &#x27;single&#x27;" in (
        document
    )
    text = Page(document).text
    assert name in text
    assert error in text


def test_hostile_window_name_is_escaped() -> None:
    state = org_state()
    state.snapshot = UsageSnapshot(windows=(UsageWindow("<b>x</b>", 0.5, None),), extra=None)
    document = render_status([state], NOW, CONFIG)
    assert "<b>" not in document
    assert "&lt;b&gt;x&lt;/b&gt;" in document


def test_last_poll_success_with_its_age() -> None:
    text = render(org_state(payload=window_payload(a=1.0), ended_ago=12)).text
    assert "Last poll: success, 12s ago" in text


def test_failed_poll_is_red_with_its_message_and_keeps_the_last_snapshot() -> None:
    state = org_state(payload=window_payload(five_hour=40.0))
    state.last_success = NOW - 300
    state.last_result = PollResult.RATE_LIMITED
    state.last_error = "HTTP 429: Rate limited."
    state.last_poll_end = NOW - 5
    page = render(state)
    [failure] = page.find("div", **{"class": "failure", "role": "status"})
    assert failure
    assert "failed: rate_limited, 5s ago" in page.text
    assert "Last success 5m 00s ago" in page.text
    assert "HTTP 429: Rate limited." in page.text
    assert len(page.bars()) == 1  # the last good numbers stay visible


def test_org_never_polled_is_waiting() -> None:
    page = render(org_state(result=None))
    assert "acme" in page.text
    assert "waiting for first poll" in page.text
    assert page.bars() == []
    assert "success" not in page.text


@pytest.mark.parametrize(
    ("extra", "shown"),
    [
        (ExtraUsage(True, 5000, 1234, "USD", 2), "Extra credits: 12.34 USD / 50.00 USD"),
        (ExtraUsage(True, 10000, 250, None, None), "Extra credits: 2.50 / 100.00"),
        (ExtraUsage(True, None, 99, "EUR", 2), "Extra credits: 0.99 EUR"),
        (ExtraUsage(False, 5000, 0, "USD", 2), "Extra credits: off"),
        (None, "Extra credits: not reported"),
    ],
)
def test_extra_credits(extra: ExtraUsage | None, shown: str) -> None:
    state = org_state()
    state.snapshot = UsageSnapshot(windows=(), extra=extra)
    assert shown in render(state).text


def test_hostile_currency_is_escaped() -> None:
    state = org_state()
    state.snapshot = UsageSnapshot(windows=(), extra=ExtraUsage(True, 100, 1, "<i>", 2))
    document = render_status([state], NOW, CONFIG)
    assert "<i>" not in document
    assert "0.01 &lt;i&gt; / 1.00 &lt;i&gt;" in document


@pytest.mark.parametrize(("interval", "refresh"), [(1, 5), (5, 5), (30, 30), (60, 60), (90, 60)])
def test_refresh_is_the_poll_interval_clamped_to_5_60(interval: float, refresh: int) -> None:
    config = make_config(
        "http://127.0.0.1:9", poll={"interval_seconds": interval, "max_interval_seconds": 300}
    )
    page = Page(render_status([org_state()], NOW, config, refresh=True))
    assert page.find("meta", **{"http-equiv": "refresh"}) == [
        {"http-equiv": "refresh", "content": str(refresh)}
    ]


def test_auto_refresh_is_asked_for_and_stopped_from_the_first_link() -> None:
    still = render(org_state())
    assert still.find("meta", **{"http-equiv": "refresh"}) == []
    assert still.find("a")[0]["href"] == "/?refresh=on"
    assert "This page shows the moment it was loaded. Reload it every 5 s" in still.text
    reloading = Page(render_status([org_state()], NOW, CONFIG, refresh=True))
    assert reloading.find("meta", **{"http-equiv": "refresh"}) != []
    assert reloading.find("a")[0]["href"] == "/"
    assert "This page reloads every 5 s. Stop auto-refresh" in reloading.text


def test_headings_form_an_outline_and_health_is_a_word() -> None:
    failing = org_state("zeta", ORG_B, result=PollResult.UNAUTHORIZED, error="HTTP 401")
    page = render(failing, org_state("alpha", ORG_A), org_state("new", ORG_C, result=None))
    levels = [int(name[1]) for name, _ in page.tags if name in ("h1", "h2", "h3", "h4")]
    assert levels[0] == 1
    assert levels.count(1) == 1
    assert all(b - a <= 1 for a, b in itertools.pairwise(levels))  # no level skipped
    assert levels.count(2) == 3 + 2  # one per org, then the footer's two
    assert "alpha ok" in page.text
    assert "new waiting" in page.text
    assert "zeta failing" in page.text
    assert [s["class"] for s in page.find("section")] == ["org ok", "org waiting", "org failing"]


def test_orgs_sorted_by_name_with_links_and_proxy_routes() -> None:
    page = render(org_state("zeta", ORG_B), org_state("alpha", ORG_A))
    headings = [attrs["id"] for attrs in page.find("h2") if attrs.get("id", "").startswith("org")]
    assert headings == [f"org-{ORG_A}", f"org-{ORG_B}"]
    hrefs = {attrs["href"] for attrs in page.find("a")}
    assert {"/metrics", "/healthz", "/readyz"} <= hrefs
    for _, method, path in PROXY_ROUTES:
        assert f"{method} {path}" in page.text
    assert "/api/organizations/{org_uuid}/memory?project_uuid=<uuid>" in page.text
    assert len(PROXY_ROUTES) == 11
    assert page.find("script") == []
    assert page.find("link") == []  # no external stylesheet


def test_no_org_at_all() -> None:
    assert "No organization configured or discovered yet." in render().text
