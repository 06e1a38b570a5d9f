"""Keeping CPython's full garbage collections short on a large, long-lived heap.

A daemon with 10,000 orgs holds about half a million objects that live as long as their
orgs do: the parsed config, the targets, the scheduler's jobs, each window's trend and
history. A full collection walks all of them (250-480 ms at 10,000 orgs, measured), and
CPython starts one whenever a quarter more objects have survived since the last, so
without care such pauses keep landing in the middle of a scrape or a proxied request,
and none of them ever found garbage there. `gc.freeze()` moves the objects alive now out
of the collector's scans for good. Reference counting still frees them when they go, so
only an object that dies inside a reference cycle would stay; the collection that runs
first clears every cycle that is garbage at that moment.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger("monitor.heap")

# Told why it runs (for the log): "start-up", "every org polled".
HeapFreezer = Callable[[str], None]


def freeze_long_lived(reason: str) -> None:
    """Collect once, then leave every object alive now out of future collections."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    log.debug(
        "after %s: %d long-lived objects left out of garbage collections (%.0f ms)",
        reason,
        gc.get_freeze_count(),
        (time.perf_counter() - started) * 1000,
    )
