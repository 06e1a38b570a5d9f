"""Where a window is heading on the status page: its sparkline and pace line, and the
PACE and PROJECTION of `monitor usage`, rendered from plain states."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from monitor.report import usage_report, usage_table
from monitor.state import OrgState, UsageStore
from monitor.status import render_status
from monitor.targets import OrgTarget
from monitor.usage import UsageSnapshot, UsageWindow
from monitor.window_view import TIMES as X
from monitor.window_view import pace_line, sparkline
from tests.support.config import make_config
from tests.support.credentials import env_credential
from tests.support.upstream import ORG_A

NOW = 1_800_000_000.0
HOUR = 3600.0
FIVE_HOURS = 5 * HOUR


class Tags(HTMLParser):
    """Start tags with their attributes, and the text, of an HTML fragment."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text += data

    def all(self, tag: str) -> list[dict[str, str]]:
        return [attrs for name, attrs in self.tags if name == tag]


def window(
    utilization: float | None, until_reset: float | None, name: str = "five_hour"
) -> UsageWindow:
    resets_at = None if until_reset is None else NOW + until_reset
    return UsageWindow(name, utilization, resets_at)


@pytest.mark.parametrize(
    ("reading", "length", "line"),
    [
        (
            window(0.52, 3 * HOUR),
            FIVE_HOURS,
            f"pace 1.3{X} — at this rate 100% in 1h 50m, before the reset in 3h 00m",
        ),
        (window(0.20, 3 * HOUR), FIVE_HOURS, f"pace 0.5{X} — on pace to end at 50%"),
        (window(1.12, HOUR), FIVE_HOURS, f"pace 1.4{X} — at 100%, the reset in 1h 00m"),
        (window(0.02, FIVE_HOURS - 300), FIVE_HOURS, "pace: too early in the window"),
        (
            window(0.5, HOUR, "claude_code"),
            None,
            "pace unknown until two resets show the window's length",
        ),
    ],
)
def test_pace_lines(reading: UsageWindow, length: float | None, line: str) -> None:
    html = pace_line(reading, length, NOW)
    assert Tags(html).text == line
    assert ('class="pace ahead"' in html) == ("100%" in line)


@pytest.mark.parametrize(
    "reading",
    [
        window(None, HOUR),
        window(0.5, None),
        window(0.5, 0.0),
        window(0.5, -60.0),
        window(0.5, FIVE_HOURS + 600),  # further than one length away: nothing sure
    ],
)
def test_no_pace_line_without_a_value_or_a_reset_to_come(reading: UsageWindow) -> None:
    assert pace_line(reading, FIVE_HOURS, NOW) == ""


def test_sparkline_is_an_image_with_a_text_alternative() -> None:
    points = [(NOW - 160 * 60 + k * 600, 0.31 + k * 0.01) for k in range(17)] + [(NOW, 0.48)]
    html = sparkline(window(0.48, 2 * HOUR), points, FIVE_HOURS, NOW, "normal", "acme five_hour")
    tags = Tags(html)
    (svg,) = tags.all("svg")
    assert svg["role"] == "img"
    assert svg["class"] == "spark normal"
    label = "acme five_hour utilization over the last 2h 40m: from 31.0% to 48.0%, "
    assert svg["aria-label"].startswith(label)
    assert re.search(r"\+6\.\d points an hour; dashed: an even pace$", svg["aria-label"])
    assert tags.text == svg["aria-label"]  # the same words in its <title>
    line, even = (p for p in tags.all("polyline") if p["class"] == "line"), tags.all("polyline")
    (drawn,) = line
    coords = [tuple(map(float, pair.split(","))) for pair in drawn["points"].split()]
    assert len(coords) == len(points)
    assert coords[0][0] == 0.0  # from the oldest reading
    x, y = coords[-1]
    assert x == 100.0  # to now
    assert y == pytest.approx(22 - 20 * 0.48, abs=0.01)
    assert all(0 <= x <= 100 and 2 <= y <= 22 for x, y in coords)
    assert [p["class"] for p in even] == ["even", "line"]  # the even pace, then the line


def test_sparkline_scales_over_100_percent_and_drops_old_readings() -> None:
    points = [(NOW - 5 * HOUR, 0.1), (NOW - HOUR, 0.9), (NOW, 1.2)]
    html = sparkline(window(1.2, HOUR), points, FIVE_HOURS, NOW, "critical", "x")
    (drawn,) = (p for p in Tags(html).all("polyline") if p["class"] == "line")
    coords = [tuple(map(float, pair.split(","))) for pair in drawn["points"].split()]
    assert len(coords) == 2  # the reading 5 h ago is outside the 4 h shown
    assert min(y for _, y in coords) == 2.0  # 120 % at the top, inside the padding


def test_no_sparkline_with_less_than_two_readings_and_no_even_pace_without_a_length() -> None:
    assert sparkline(window(0.5, HOUR), [(NOW, 0.5)], FIVE_HOURS, NOW, "normal", "x") == ""
    points = [(NOW - 600, 0.4), (NOW, 0.5)]
    html = sparkline(window(0.5, HOUR, "tangelo"), points, None, NOW, "normal", "x")
    assert [p["class"] for p in Tags(html).all("polyline")] == ["line"]
    # two readings two minutes apart: too close for a rate
    html = sparkline(window(0.5, HOUR), [(NOW - 120, 0.4), (NOW, 0.5)], None, NOW, "normal", "x")
    (svg,) = Tags(html).all("svg")
    assert svg["aria-label"] == "x utilization over the last 2m 00s: from 40.0% to 50.0%"


def test_hostile_window_name_is_escaped_in_the_text_alternative() -> None:
    points = [(NOW - 600, 0.4), (NOW, 0.5)]
    html = sparkline(window(0.5, HOUR), points, None, NOW, "normal", 'a"><script>')
    assert "<script>" not in html
    assert "&quot;&gt;&lt;script&gt;" in html


def store_with_history() -> tuple[UsageStore, OrgState]:
    """acme polled every 10 minutes for 2 hours: five_hour 1.3x ahead, claude_code
    (length not learned) climbing."""
    store = UsageStore(clock=lambda: NOW)
    target = OrgTarget(ORG_A, "acme", "http://127.0.0.1:9", "/usage", env_credential())
    store.set_targets([target])
    resets_at = NOW + 2.5 * HOUR
    for minutes in range(0, 121, 10):
        at = NOW - 2 * HOUR + minutes * 60
        share = 1 - (resets_at - at) / FIVE_HOURS
        windows = (
            UsageWindow("five_hour", round(1.3 * share, 4), resets_at),
            UsageWindow("claude_code", 0.1 + minutes / 1000, NOW + 3 * HOUR),
        )
        store.record_success(ORG_A, UsageSnapshot(windows, None), end=at, duration=0.1)
    state = store.get(ORG_A)
    assert state is not None
    return store, state


def test_the_status_page_shows_each_windows_sparkline_and_pace() -> None:
    store, _ = store_with_history()
    page = Tags(render_status(store, NOW, make_config("http://127.0.0.1:9")))
    labels = [svg["aria-label"] for svg in page.all("svg")]
    assert [label.split(" utilization ")[0] for label in labels] == [
        "acme five_hour",
        "acme claude_code",
    ]
    assert f"pace 1.3{X} — at this rate 100% in 1h 20m, before the reset in 2h 30m" in page.text
    assert "pace unknown until two resets show the window's length" in page.text


def test_usage_table_and_json_give_pace_and_projection() -> None:
    _, state = store_with_history()
    table = usage_table([state], NOW).splitlines()
    assert table[0].split() == [
        "ORG",
        "WINDOW",
        "USED",
        "RESETS",
        "IN",
        "PACE",
        "PROJECTION",
        "EXTRA",
        "CREDITS",
    ]
    assert table[1].split()[:8] == ["acme", "five_hour", "65.0%", "2h", "30m", "1.3x", "100%", "in"]
    assert table[2].split()[:6] == ["acme", "claude_code", "22.0%", "3h", "00m", "-"]
    windows = usage_report([state], NOW)["orgs"][0]["windows"]
    assert windows["five_hour"] == {
        "utilization_percent": 65.0,
        "resets_at": "2027-01-15T10:30:00Z",
        "length_seconds": FIVE_HOURS,
        "pace_ratio": 1.3,
        "projected_percent_at_reset": 130.0,
        "full_at": "2027-01-15T09:20:46Z",
    }
    assert windows["claude_code"]["length_seconds"] is None
    assert windows["claude_code"]["pace_ratio"] is None
    assert windows["claude_code"]["full_at"] is None


def test_usage_table_with_no_active_window() -> None:
    store = UsageStore(clock=lambda: NOW)
    target = OrgTarget(ORG_A, "acme", "http://127.0.0.1:9", "/usage", env_credential())
    store.set_targets([target])
    idle = UsageSnapshot((UsageWindow("five_hour", None, None),), None)
    store.record_success(ORG_A, idle, end=NOW, duration=0.1)
    state = store.get(ORG_A)
    assert state is not None
    assert usage_table([state], NOW).splitlines()[1].split() == [
        "acme",
        "(no",
        "active",
        "window)",
        "-",
        "-",
        "-",
        "-",
        "-",
    ]
