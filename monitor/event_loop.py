"""Which event loop the daemon runs on: uvloop when it is installed (the `uvloop` extra)
or asked for by `[server] event_loop`, else asyncio's own."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

EventLoop = Literal["auto", "asyncio", "uvloop"]
T = TypeVar("T")


def uvloop_installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def loop_name(choice: EventLoop) -> str:
    """The loop `choice` runs on here: "uvloop" or "asyncio"."""
    if choice == "auto":
        return "uvloop" if uvloop_installed() else "asyncio"
    return choice


def loop_factory(choice: EventLoop) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if loop_name(choice) == "asyncio":
        return None  # asyncio's default
    import uvloop  # noqa: PLC0415 (an optional extra: imported only when chosen)

    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: EventLoop) -> T:
    """`asyncio.run(main)`, on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)
