"""The sparklines and pace lines of the status page in headless Chromium.

The page and browser are the fixtures of `tests/system/conftest.py` (three hours of polls
of the simulator on a test-driven clock); test_status_browser.py already checks layout,
contrast and axe-core on it, sparklines and pace lines included. Here: each sparkline is an image
named after its org and window in Chromium's accessibility tree, it sits in its window's
block after the reading and before the pace line, and the pace lines say what the
simulated windows do.
"""

from __future__ import annotations

from typing import Any

import pytest

from monitor.window_view import TIMES
from tests.support.devtools import Tab
from tests.support.status_browser import LONG_NAME, Served, show

PLACES = """
[...document.querySelectorAll("li.window")].flatMap((block) => {
  const svg = block.querySelector("svg.spark");
  if (!svg) return [];
  const box = (el) => el && el.getBoundingClientRect();
  const outer = box(block), spark = box(svg), reading = box(block.querySelector(".reading"));
  const pace = box(block.querySelector(".pace"));
  return [{
    name: block.querySelector(".window-name").textContent,
    inside: spark.left >= outer.left && spark.right <= outer.right + 0.5,
    wide: spark.width >= outer.width * 0.7 && spark.height >= 16,
    afterReading: spark.top >= reading.bottom - 0.5,
    beforePace: !pace || pace.top >= spark.bottom - 0.5,
  }];
})
"""


@pytest.mark.tool
async def test_sparklines_are_named_images(tab: Tab, served: Served) -> None:
    await show(tab, served.url, 768)
    tree = await tab.call("Accessibility.getFullAXTree")
    images = [
        node["name"]["value"]
        for node in tree["nodes"]
        if not node.get("ignored") and node.get("role", {}).get("value") == "image"
    ]
    named = {name.split(" utilization over the last ")[0] for name in images}
    assert named == served.sparkline_names()
    assert len(images) == len(named) >= 6
    assert any("points an hour; dashed: an even pace" in name for name in images)


@pytest.mark.tool
@pytest.mark.parametrize("width", [320, 1280])
async def test_each_sparkline_sits_between_the_reading_and_the_pace(
    tab: Tab, served: Served, width: int
) -> None:
    await show(tab, served.url, width)
    places: list[dict[str, Any]] = await tab.evaluate(PLACES)
    assert len(places) == len(served.sparkline_names())
    for place in places:
        assert place["inside"] and place["wide"], place
        assert place["afterReading"] and place["beforePace"], place


@pytest.mark.tool
async def test_pace_lines_say_where_each_window_is_heading(tab: Tab, served: Served) -> None:
    await show(tab, served.url, 1280)
    lines = await tab.evaluate(
        "[...document.querySelectorAll('.pace')].map((p) => [p.className, p.innerText])"
    )
    text = {line for _, line in lines}
    # acme's claude_code: 1.2x, its length learned from its hourly resets
    assert f"pace 1.2{TIMES} — at this rate 100% in 1m 30s, before the reset in 11m 30s" in text
    # beta's five_hour over 100 % (its last good poll, 5 minutes ago), its weekly
    # windows behind
    assert f"pace 1.37{TIMES} — at 100%, the reset in 1h 00m" in text
    assert f"pace 0.6{TIMES} — on pace to end at 60%" in text
    assert f"pace 0.95{TIMES} — on pace to end at 95%" in text  # not rounded to 1.0
    ahead = {line for cls, line in lines if "ahead" in cls.split()}
    assert ahead == {line for line in text if "100%" in line}
    assert LONG_NAME in await tab.evaluate("document.body.innerText")
