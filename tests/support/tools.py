"""External tools the tests use (promtool, prometheus, chromium, ...)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from typing import NoReturn

import pytest

REQUIRE_TOOLS = "MONITOR_REQUIRE_TOOLS"


def require_tool(name: str, hint: str) -> str:
    """Path of an external tool. Missing: skip locally, fail in CI (MONITOR_REQUIRE_TOOLS=1)."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} not found: {hint}")
    return path


def missing(message: str) -> NoReturn:
    """Something a test needs is not here: skip locally, fail where tools are required."""
    if os.environ.get(REQUIRE_TOOLS) == "1":
        pytest.fail(message + f" ({REQUIRE_TOOLS}=1: tools are required here)")
    pytest.skip(message)


PROMTOOL_HINT = "apt-get install prometheus"


async def promtool_check_metrics(exposition: str) -> subprocess.CompletedProcess[str]:
    """`promtool check metrics` on an exposition (in a thread: the loop keeps serving)."""
    promtool = require_tool("promtool", PROMTOOL_HINT)
    return await asyncio.to_thread(
        subprocess.run,
        [promtool, "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
