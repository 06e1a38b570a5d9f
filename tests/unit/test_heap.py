"""`freeze_long_lived`: garbage is collected first, what is alive leaves the collector's
scans, and the log says why and how much."""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Iterator

import pytest

from monitor.heap import freeze_long_lived


class Node:
    """Something that can sit in a reference cycle."""

    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def thawed() -> Iterator[None]:
    """The test process's heap goes back into the collector's scans afterwards."""
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("thawed")
def test_cycles_that_are_garbage_go_before_the_rest_is_frozen(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, "monitor.heap")
    dead, alive = Node(), Node()
    dead.other = dead  # a cycle only the collector can free
    alive.other = alive
    gone = weakref.ref(dead)
    del dead

    freeze_long_lived("start-up")

    assert gone() is None
    assert alive.other is alive  # what is in use stays, frozen
    assert gc.get_freeze_count() > 0
    (record,) = [r for r in caplog.records if r.name == "monitor.heap"]
    assert record.getMessage().startswith(f"after start-up: {gc.get_freeze_count()} long-lived")
