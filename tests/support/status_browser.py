"""The status page served for the browser tests: three hours of polls of a simulator on a
test-driven clock (so windows have a history and a pace), and what the tests need to look
at it in Chromium."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from monitor.simulator import Simulator, WindowSpec
from monitor.state import UsageStore
from tests.support.clock import FakeClock
from tests.support.devtools import Tab
from tests.support.paths import ROOT
from tests.support.tools import missing
from tests.support.upstream import ORG_A, ORG_B, ORG_C, TOKEN_A, TOKEN_B, TOKEN_C

CHECKS_JS = (ROOT / "tests" / "system" / "status_checks.js").read_text(encoding="utf-8")
# Where .ci/run installs axe-core; MONITOR_AXE_JS points elsewhere.
AXE_DEFAULT = ROOT / ".tools" / "node_modules" / "axe-core" / "axe.min.js"
AXE_HINT = "npm install --prefix .tools axe-core@4.14.1 (or set MONITOR_AXE_JS)"
WIDTHS = (320, 375, 768, 1280)
SCHEMES = ("light", "dark")
SCREENSHOTS = {
    (width, scheme): ROOT / "docs" / f"status-page-{width}-{scheme}.png"
    for width in (375, 1280)
    for scheme in SCHEMES
}
LONG_NAME = "initech-platform-engineering-shared-services-emea"
DEADLINE = 30.0
HOUR = 3600.0
WEEK = 7 * 24 * HOUR
# The page is rendered at this moment (fixed, so the screenshots only change with the page).
SHOWN_AT = 1_800_000_000.0
HISTORY = 3 * HOUR
POLL_EVERY = 300.0


@dataclass
class Served:
    url: str
    store: UsageStore

    def window_names(self) -> set[str]:
        """'org window' for every window with a value: what each meter is named."""
        return {
            f"{state.target.name} {window.name}"
            for state in self.store
            if state.snapshot is not None
            for window in state.snapshot.windows
            if window.utilization is not None
        }

    def window_count(self) -> int:
        return sum(len(s.snapshot.windows) for s in self.store if s.snapshot is not None)

    def sparkline_names(self) -> set[str]:
        """'org window' of every window with two readings or more: what each sparkline
        is named after."""
        return {
            f"{state.target.name} {trend.name}"
            for state in self.store
            if state.snapshot is not None
            for trend in state.trends
            if len(trend.history) >= 2
        }


def window(
    period: float, percent_at_reset: float, now_at: float, cap: float | None = 100.0
) -> WindowSpec:
    """A window `now_at` (0..1) of the way through its cycle at SHOWN_AT, filling at a
    steady multiple (percent_at_reset / 100) of an even pace."""
    phase = (now_at - HISTORY / period) % 1.0  # where it is when the history starts
    return WindowSpec.filling(period, percent_at_reset, phase=phase, cap=cap)


def history_simulator(clock: FakeClock) -> Simulator:
    """At SHOWN_AT: acme's claude_code (1 h, learned from its resets) at 97 %, 1.2x;
    beta's five_hour at 112 % (1.4x), seven_day at 41 % and seven_day_cowork at 12 %,
    behind; the long-named org's five_hour at 83 %, just behind, seven_day at 58.5 %."""
    sim = Simulator(clock)
    sim.add_org(
        ORG_A,
        "acme",
        plan="team",
        shape="seed",
        windows={
            "claude_code": window(HOUR, 120.0, 97.0 / 120.0),
            "projects": WindowSpec.unused(WEEK),
        },
    )
    sim.add_org(
        ORG_B,
        "beta",
        plan="enterprise",
        shape="limits_2026",
        windows={
            "five_hour": window(5 * HOUR, 140.0, 0.8, cap=None),
            "seven_day": window(WEEK, 60.0, 41.0 / 60.0),
            "seven_day_cowork": window(WEEK, 17.0, 12.0 / 17.0),
        },
    )
    sim.add_org(
        ORG_C,
        LONG_NAME,
        plan="max",
        shape="oauth_2025",
        windows={
            "five_hour": window(5 * HOUR, 95.0, 83.0 / 95.0),
            "seven_day": window(WEEK, 65.0, 0.9),
            "seven_day_opus": WindowSpec.unused(WEEK),
        },
    )
    sim.add_account(token=TOKEN_A, org_uuids=[ORG_A])
    sim.add_account(token=TOKEN_B, org_uuids=[ORG_B])
    sim.add_account(token=TOKEN_C, org_uuids=[ORG_C])
    return sim


async def show(tab: Tab, url: str, width: int, scheme: str = "light") -> None:
    await tab.viewport(width, 800)
    await tab.color_scheme(scheme)
    await tab.open(url)
    await tab.evaluate(CHECKS_JS)


def axe_source() -> str:
    path = Path(os.environ.get("MONITOR_AXE_JS") or AXE_DEFAULT)
    if not path.is_file():
        missing(f"axe-core not found at {path}: {AXE_HINT}")
    return path.read_text(encoding="utf-8")
