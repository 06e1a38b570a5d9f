"""Which event loops the proxy scenario measures: asyncio always, uvloop when installed.

monitor picks its loop from `[server] event_loop` ("auto": uvloop when importable). The
default rows pin it to asyncio when uvloop is importable, so that "default" means the same
thing whether or not the extra is installed; the uvloop rows set it to "uvloop" and are
compared with the floor on uvloop, like for like. A monitor without that setting (older
than the uvloop extra) gets no key at all, and its uvloop rows say why they are skipped.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass

from monitor.schema import ServerConfig

UVLOOP_MISSING = "skipped: uvloop not installed (pip install -e '.[uvloop]')"
NO_SETTING = "skipped: this monitor has no [server] event_loop setting"


@dataclass(frozen=True)
class LoopPlan:
    # What the default monitor row writes as `[server] event_loop` (None: no key).
    default_key: str | None
    # Why the floor on uvloop is not measured (None: it is).
    floor_uvloop_skip: str | None
    # Why monitor on uvloop is not measured (None: it is, with event_loop = "uvloop").
    monitor_uvloop_skip: str | None


def plan_loops(uvloop_installed: bool, monitor_has_setting: bool) -> LoopPlan:
    if not uvloop_installed:
        return LoopPlan(None, UVLOOP_MISSING, UVLOOP_MISSING)
    if not monitor_has_setting:
        return LoopPlan(None, None, NO_SETTING)
    return LoopPlan("asyncio", None, None)


def uvloop_installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def uvloop_version() -> str | None:
    try:
        return importlib.metadata.version("uvloop")
    except importlib.metadata.PackageNotFoundError:
        return None


def monitor_has_event_loop_setting() -> bool:
    return "event_loop" in ServerConfig.model_fields


def current_plan() -> LoopPlan:
    return plan_loops(uvloop_installed(), monitor_has_event_loop_setting())
