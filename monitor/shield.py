"""Rate-limit shielding, shared by the poller and the proxy, keyed by credential
fingerprint (`Credential.fingerprint`, a hash: no token is kept here).

The upstream limits usage reads per token, and a 429 (often `Retry-After: 0`) can last
hours; every client that asks again meanwhile only prolongs it. With `[proxy]
shield_rate_limits` on, a 429 on a usage route holds the credential for the back-off the
poller would use (`schedule.next_poll_delay`: Retry-After when positive, else exponential
from `max_interval_seconds`). While it holds, the proxy answers that credential's usage
reads from memory, and the poller polls none of its orgs. A 429 the poller saw holds the
credential as long as the poller waits; any 200 for it releases it. Off, nothing is kept.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from monitor.config_source import ConfigSource
from monitor.schedule import PollOutcome, PollPolicy, next_poll_delay
from monitor.state import PollResult
from monitor.usage_cache import StoredAnswer

# Credentials remembered at most; past it, the holds that end soonest are forgotten first.
MAX_CREDENTIALS = 4096


@dataclass(frozen=True)
class Hold:
    """A credential the upstream limited, until when, and the 429 to answer with."""

    until: float
    answer: StoredAnswer | None  # the 429 the proxy relayed; None if only the poller saw one
    strikes: int  # 429s in a row the proxy relayed for it (the exponent of the back-off)


class RateLimitShield:
    def __init__(
        self,
        config: ConfigSource,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._config = config
        self._clock = clock
        self._jitter = jitter
        self._holds: dict[str, Hold] = {}

    @property
    def enabled(self) -> bool:
        return self._config.current.proxy.shield_rate_limits

    def __len__(self) -> int:
        return len(self._holds)

    def held(self, fingerprint: str) -> Hold | None:
        """The credential's hold, while it lasts (None when off, or not limited now).
        Turned off by a reload, it forgets every hold."""
        if not self.enabled:
            self._holds.clear()
            return None
        hold = self._holds.get(fingerprint)
        if hold is None or hold.until <= self._clock():
            return None
        return hold

    def limited(
        self, fingerprint: str, retry_after: float | None, answer: StoredAnswer | None
    ) -> float | None:
        """The proxy relayed a 429 for this credential: hold it for the poller's back-off
        and answer with `answer` meanwhile. Returns the end of the hold (None when off)."""
        if not self.enabled:
            return None
        now = self._clock()
        previous = self._holds.get(fingerprint)
        strikes = (previous.strikes if previous else 0) + 1
        poll = self._config.current.poll
        outcome = PollOutcome(
            result=PollResult.RATE_LIMITED,
            previous_delay=None,
            consecutive_failures=strikes,
            retry_after=retry_after,
        )
        policy = PollPolicy(poll.interval_seconds, poll.max_interval_seconds)
        until = now + next_poll_delay(outcome, policy, now, self._jitter())
        self._hold(fingerprint, until, answer, strikes)
        return until

    def hold_until(self, fingerprint: str, until: float) -> None:
        """The poller saw a 429 for this credential and waits until `until`."""
        if self.enabled:
            previous = self._holds.get(fingerprint)
            self._hold(fingerprint, until, None, previous.strikes if previous else 0)

    def release(self, fingerprint: str) -> None:
        """A 200 for this credential: it is not limited (any more)."""
        self._holds.pop(fingerprint, None)

    def _hold(
        self, fingerprint: str, until: float, answer: StoredAnswer | None, strikes: int
    ) -> None:
        previous = self._holds.get(fingerprint)
        if previous is not None:
            until = max(until, previous.until)
            answer = answer or previous.answer
        self._holds[fingerprint] = Hold(until, answer, strikes)
        if len(self._holds) > MAX_CREDENTIALS:
            soonest = min(self._holds, key=lambda key: self._holds[key].until)
            del self._holds[soonest]
