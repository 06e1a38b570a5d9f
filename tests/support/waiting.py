"""Waiting for a condition with a bound, instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")


@overload
async def until(
    condition: Callable[[], Awaitable[T | None]],
    what: str,
    *,
    timeout: float = ...,  # noqa: ASYNC109 - a deadline for the condition, not one await
    interval: float = ...,
) -> T: ...


@overload
async def until(
    condition: Callable[[], T | None],
    what: str,
    *,
    timeout: float = ...,  # noqa: ASYNC109 - a deadline for the condition, not one await
    interval: float = ...,
) -> T: ...


async def until(
    condition: Callable[[], T | Awaitable[T | None] | None],
    what: str,
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 - a deadline for the condition, not one await
    interval: float = 0.02,
) -> T:
    """Wait for `condition()` (sync or async) to be truthy, asking every `interval`
    seconds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


def until_sync(condition: Callable[[], T | None], what: str, *, timeout: float = 30.0) -> T:
    """`until` for code outside an event loop (processes, threads)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
