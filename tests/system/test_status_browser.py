"""The status page in headless Chromium, driven over the DevTools protocol.

The page comes from the real app polling the simulator over TCP for three hours of a
test-driven clock (a poll every 5 minutes), so each window has a recent history and a
pace: three orgs, one of them failing with its last numbers kept, one with a long
unbroken name, windows at normal, warning, critical, over 100 % and without a value,
ahead of and behind an even pace, one whose length was learned from its resets.
Measured at 320, 375, 768 and 1280 px: no sideways scroll, each window's name, bar and
number in one block; text contrast at WCAG AA in light and dark; axe-core (from npm,
injected only here) finds nothing serious or critical; meters and sparklines named for
screen readers; the auto-refresh, when asked for, can be stopped.

`MONITOR_WRITE_SCREENSHOTS=1` makes `test_screenshots` rewrite the ones in `docs/`.
"""

from __future__ import annotations

import asyncio
import os
import struct
from pathlib import Path
from typing import Any

import pytest

from tests.support.devtools import Tab
from tests.support.paths import ROOT
from tests.support.status_browser import (
    DEADLINE,
    LONG_NAME,
    SCHEMES,
    SCREENSHOTS,
    WIDTHS,
    Served,
    axe_source,
    show,
)


@pytest.mark.tool
async def test_layout_holds_from_320_px_up(tab: Tab, served: Served) -> None:
    for width in WIDTHS:
        await show(tab, served.url, width)
        layout = await tab.evaluate("statusChecks.layout()")
        assert layout["innerWidth"] == width
        assert layout["scrollWidth"] <= width, f"scrolls sideways at {width} px: {layout}"
        assert layout["problems"] == [], f"at {width} px"
        assert layout["blocks"] == served.window_count() > 0
    assert LONG_NAME in await tab.evaluate("document.body.innerText")


@pytest.mark.tool
@pytest.mark.parametrize("scheme", SCHEMES)
async def test_text_contrast_passes_wcag_aa(tab: Tab, served: Served, scheme: str) -> None:
    await show(tab, served.url, 375, scheme)
    result = await tab.evaluate("statusChecks.contrast()")
    # the emulated scheme really applies: a dark page in dark mode, a light one otherwise
    assert (result["pageLuminance"] < 0.05) == (scheme == "dark")
    texts = result["texts"]
    assert len(texts) > 50
    low = [text for text in texts if text["ratio"] < text["needed"]]
    assert low == [], f"{scheme}: text below WCAG AA contrast"
    # the states keep their meaning: critical and failing text is drawn in a red
    colours = {text["text"]: text["color"] for text in texts}
    assert colours["critical"] == colours["failing"]


@pytest.mark.tool
async def test_axe_finds_nothing_serious_or_critical(tab: Tab, served: Served) -> None:
    source = axe_source()
    found: dict[tuple[str, str], list[str]] = {}
    for scheme in SCHEMES:
        for query in ("", "?refresh=on"):
            await show(tab, served.url + query, 375, scheme)
            await tab.evaluate(source)
            violations = await tab.evaluate(
                "axe.run(document).then(r => r.violations"
                ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
                ".map(v => `${v.id} (${v.impact}): ${v.nodes.length} node(s)`))"
            )
            found[(scheme, query)] = violations
    # A timed reload is a change axe always reports (WCAG 2.2.1), so the page reloads only
    # when the reader asked for it, with the link to stop it first (tested below). The page
    # as served at `/` has nothing at all; the reloading one nothing else.
    for (scheme, query), violations in found.items():
        allowed = ["meta-refresh (critical): 1 node(s)"] if query else []
        assert violations in ([], allowed), f"{scheme} {query or '/'}: {violations}"


@pytest.mark.tool
async def test_meters_and_headings_as_a_screen_reader_gets_them(tab: Tab, served: Served) -> None:
    await show(tab, served.url, 768)
    tree = await tab.call("Accessibility.getFullAXTree")
    nodes = [node for node in tree["nodes"] if not node.get("ignored")]

    def role(node: dict[str, Any]) -> str:
        return str(node.get("role", {}).get("value"))

    meters = [node for node in nodes if role(node) == "meter"]
    assert {node["name"]["value"] for node in meters} == served.window_names()
    assert len(meters) == len(served.window_names())
    ranges = {
        (node["value"]["value"], prop["name"], prop["value"]["value"])
        for node in meters
        for prop in node.get("properties", [])
        if prop["name"] in ("valuemin", "valuemax")
    }
    # beta's five_hour at 112 % is read as full (its true number is printed beside it)
    assert {(100, "valuemin", 0), (100, "valuemax", 100), (83, "valuemax", 100)} <= ranges

    headings = [
        (prop["value"]["value"], node["name"]["value"])
        for node in nodes
        if role(node) == "heading"
        for prop in node.get("properties", [])
        if prop["name"] == "level"
    ]
    assert headings == [
        (1, "Claude usage"),
        (2, "acme"),
        (2, "beta"),
        (2, LONG_NAME),
        (2, "Endpoints"),
        (2, "Proxy routes"),
    ]


@pytest.mark.tool
async def test_auto_refresh_keeps_focus_at_the_start_and_can_be_stopped(
    tab: Tab, served: Served
) -> None:
    await show(tab, served.url + "?refresh=on", 1280)
    reloaded = tab.expect("Page.loadEventFired")
    await tab.press_tab()
    first_stop = "document.activeElement.textContent"
    assert await tab.evaluate(first_stop) == "Stop auto-refresh"
    # The <meta refresh> reload (5 s here) neither moves focus into the page nor keeps
    # it: focus is back on the document, and one Tab reaches the pause link again.
    await asyncio.wait_for(reloaded, DEADLINE)
    assert await tab.evaluate("document.activeElement === document.body")
    assert await tab.evaluate("document.querySelector('[autofocus]')") is None
    await tab.press_tab()
    assert await tab.evaluate(first_stop) == "Stop auto-refresh"

    stopped = tab.expect("Page.loadEventFired")
    await tab.evaluate("document.activeElement.click()")
    await asyncio.wait_for(stopped, DEADLINE)
    assert await tab.evaluate("location.search") == ""
    assert await tab.evaluate("document.querySelector('meta[http-equiv=refresh]')") is None
    assert "Reload it every 5 s" in await tab.evaluate("document.body.innerText")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.tool
async def test_screenshots(tab: Tab, served: Served, tmp_path: Path) -> None:
    """Whole-page shots at 375 and 1280 px, light and dark; into docs/ only when asked."""
    into_docs = os.environ.get("MONITOR_WRITE_SCREENSHOTS") == "1"
    for (width, scheme), docs_path in SCREENSHOTS.items():
        await show(tab, served.url, width, scheme)
        data = await tab.screenshot()
        (docs_path if into_docs else tmp_path / docs_path.name).write_bytes(data)
        shot_width, height = png_size(data)
        assert shot_width == width
        assert height > 800  # three orgs and the footer: longer than one screen
        assert len(data) > 50_000  # a blank page compresses to a few kB


def test_screenshots_in_docs_are_there_and_shown() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for (width, _), path in SCREENSHOTS.items():
        assert png_size(path.read_bytes())[0] == width, path
        assert f"docs/{path.name}" in readme
