"""Which event loops the proxy scenario measures: asyncio always, uvloop when installed.

monitor picks its loop from `[server] event_loop` ("auto": uvloop when importable). The
default rows pin it to asyncio when uvloop is importable, so that "default" means the same
thing whether or not the extra is installed; the uvloop rows set it to "uvloop" and are
compared with the floor on uvloop, like for like.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

from monitor.event_loop import uvloop_installed

UVLOOP_MISSING = "skipped: uvloop not installed (pip install -e '.[uvloop]')"


@dataclass(frozen=True)
class LoopPlan:
    # What the default monitor row writes as `[server] event_loop` (None: no key).
    default_key: str | None
    # Why the floor on uvloop is not measured (None: it is).
    floor_uvloop_skip: str | None
    # Why monitor on uvloop is not measured (None: it is, with event_loop = "uvloop").
    monitor_uvloop_skip: str | None


def plan_loops(installed: bool) -> LoopPlan:
    if not installed:
        return LoopPlan(None, UVLOOP_MISSING, UVLOOP_MISSING)
    return LoopPlan("asyncio", None, None)


def uvloop_version() -> str | None:
    try:
        return importlib.metadata.version("uvloop")
    except importlib.metadata.PackageNotFoundError:
        return None


def current_plan() -> LoopPlan:
    return plan_loops(uvloop_installed())
