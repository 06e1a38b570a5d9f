"""Log a failure when it starts, remind at most every few minutes, and log the recovery.

An org that fails the same way on every poll would otherwise write a line a minute for
hours; a different failure (another kind or another message), or the first one after a
success, is always logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

# A repeated identical failure is logged again at most this often.
REMINDER_SECONDS = 600.0


@dataclass
class _Memory:
    kind: str | None = None
    message: str | None = None
    logged_at: float = 0.0


class FailureLog:
    """Failures of many subjects (orgs, accounts), each remembered by its key."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        clock: Callable[[], float],
        reminder_seconds: float = REMINDER_SECONDS,
    ) -> None:
        self._log = logger
        self._what = what  # "poll", "discovery": the first word of each line
        self._clock = clock
        self._reminder = reminder_seconds
        self._memory: dict[str, _Memory] = {}

    def failed(self, key: str, subject: str, kind: str, message: str) -> bool:
        """Note a failure; log it unless the same failure (kind and message) was logged
        recently. `subject` is what the line names (`org=acme`). True if a line was
        written."""
        memory = self._memory.setdefault(key, _Memory())
        now = self._clock()
        same = (memory.kind, memory.message) == (kind, message)
        if same and now - memory.logged_at < self._reminder:
            return False
        again = " (still)" if same else ""
        self._log.warning(
            "%s failed%s: %s result=%s: %s", self._what, again, subject, kind, message
        )
        memory.kind, memory.message, memory.logged_at = kind, message, now
        return True

    def succeeded(self, key: str, subject: str) -> None:
        memory = self._memory.get(key)
        if memory is not None and memory.kind is not None:
            self._log.info("%s recovered: %s (was %s)", self._what, subject, memory.kind)
            memory.kind = memory.message = None

    def forget(self, key: str) -> None:
        self._memory.pop(key, None)
