"""The coalescing cache of usage reads: identical reads within `[proxy]
usage_cache_seconds` share one upstream answer, kept in memory and bounded.

"Identical" is a `CacheKey`: the route, path and query, a digest of the caller's
credentials (so two tokens never share an entry) and the request headers that change the
answer's bytes (`Accept-Encoding`, `anthropic-beta`). Only 200 answers are kept. Reads
that arrive while an identical one is on its way upstream wait for it (`Flight`) instead
of making their own call. Keys, freshness and bounds are plain functions and data; the
only I/O-ish part is the `asyncio.Event` a flight's waiters wait on.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from multidict import MultiMapping

from monitor.body_copy import BodyCopy
from monitor.schema import ProxyConfig

# Request headers that change the bytes of a usage answer, so they are part of the key.
VARYING_HEADERS = ("Accept-Encoding", "anthropic-beta")
# What an entry costs besides its body and headers (key, bookkeeping), for the byte bound.
ENTRY_OVERHEAD_BYTES = 256


@dataclass(frozen=True)
class CacheKey:
    route: str
    path: str
    query: str
    credentials: str  # a digest (`proxy_rules.credentials_digest`), never a credential
    variant: tuple[str, ...]  # the VARYING_HEADERS as sent, normalized


def cache_key(
    route: str, path: str, query: str, credentials: str, headers: MultiMapping[str]
) -> CacheKey:
    variant = tuple(
        ",".join(v.strip().lower() for v in headers.getall(name, [])) for name in VARYING_HEADERS
    )
    return CacheKey(route, path, query, credentials, variant)


def _directives(headers: MultiMapping[str], name: str) -> set[str]:
    return {
        item.strip().split("=", 1)[0].strip().lower()
        for value in headers.getall(name, [])
        for item in value.split(",")
    }


def bypasses(headers: MultiMapping[str]) -> bool:
    """The caller asked for a fresh answer: `Cache-Control: no-cache` (or `no-store`,
    `max-age=0`), or `Pragma: no-cache`."""
    control = _directives(headers, "Cache-Control")
    max_age_zero = any(
        item.replace(" ", "").lower() == "max-age=0"
        for value in headers.getall("Cache-Control", [])
        for item in value.split(",")
    )
    return (
        bool(control & {"no-cache", "no-store"})
        or max_age_zero
        or ("no-cache" in _directives(headers, "Pragma"))
    )


def may_store(headers: MultiMapping[str]) -> bool:
    """`Cache-Control: no-store` from the caller: its answer is not kept for others."""
    return "no-store" not in _directives(headers, "Cache-Control")


@dataclass(frozen=True)
class StoredAnswer:
    """An upstream answer as it was relayed: status, headers (hop-by-hop ones already
    removed) and the body's bytes as they went over the wire."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    received_at: float  # the app's clock when its last byte was relayed

    @property
    def size(self) -> int:
        header_bytes = sum(len(name) + len(value) for name, value in self.headers)
        return len(self.body) + header_bytes + ENTRY_OVERHEAD_BYTES

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)


def age_seconds(answer: StoredAnswer, now: float) -> int:
    """The `Age` of a stored answer: whole seconds since it was received, never negative."""
    return max(0, int(now - answer.received_at))


def is_fresh(answer: StoredAnswer, now: float, ttl: float) -> bool:
    """Younger than `ttl`. A clock that went back before the answer makes it stale, so a
    stepped clock cannot keep an entry forever."""
    return answer.received_at <= now < answer.received_at + ttl


class Capture(BodyCopy):
    """A copy of one relayed answer, up to `limit` bytes of body; past that it gives up
    on the body (the status and headers stay known)."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.status = 0
        self.reason = ""
        self.headers: tuple[tuple[str, str], ...] = ()
        self.complete = False

    def start(self, status: int, reason: str, headers: Iterable[tuple[str, str]]) -> None:
        self.status, self.reason, self.headers = status, reason, tuple(headers)

    def answer(self, now: float) -> StoredAnswer | None:
        """The whole answer, if it was relayed to its end and fit the limit."""
        if not self.complete or self.overflowed:
            return None
        return StoredAnswer(self.status, self.reason, self.headers, self.joined(), now)


@dataclass
class Flight:
    """One upstream call that identical reads wait for instead of making their own."""

    answer: StoredAnswer | None = None
    waiters: int = 0
    _landed: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait(self) -> StoredAnswer | None:
        """The answer the call brought (any status), or None if it brought none whole."""
        self.waiters += 1
        try:
            await self._landed.wait()
        finally:
            self.waiters -= 1
        return self.answer

    def land(self, answer: StoredAnswer | None) -> None:
        self.answer = answer
        self._landed.set()


class UsageCache:
    """The entries (least recently used first) and the flights under way. Its settings
    are read on every call, so a reload applies at once; state lives in memory only."""

    def __init__(self, settings: Callable[[], ProxyConfig], clock: Callable[[], float]) -> None:
        self._settings = settings
        self._clock = clock
        self._entries: OrderedDict[CacheKey, StoredAnswer] = OrderedDict()
        self._bytes = 0
        self._flights: dict[CacheKey, Flight] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def enabled(self) -> bool:
        return self._settings().usage_cache_seconds > 0

    def waiting(self) -> int:
        """Reads waiting for a flight, all keys together."""
        return sum(flight.waiters for flight in self._flights.values())

    def fresh(self, key: CacheKey) -> StoredAnswer | None:
        """The stored answer for `key` if it is still fresh; a stale one is dropped."""
        answer = self._entries.get(key)
        if answer is None:
            return None
        if not is_fresh(answer, self._clock(), self._settings().usage_cache_seconds):
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return answer

    def flight(self, key: CacheKey) -> Flight | None:
        return self._flights.get(key)

    def take_off(self, key: CacheKey) -> Flight:
        """Start the one upstream call for `key`; identical reads wait for it."""
        flight = Flight()
        self._flights[key] = flight
        return flight

    def land(
        self, key: CacheKey, flight: Flight, answer: StoredAnswer | None, *, store: bool
    ) -> None:
        """The call is over: hand its answer to the waiters, and keep it if it is a 200."""
        if self._flights.get(key) is flight:
            del self._flights[key]
        flight.land(answer)
        if store and answer is not None and answer.status == 200:
            self.put(key, answer)

    def put(self, key: CacheKey, answer: StoredAnswer) -> bool:
        """Keep `answer` within the bounds, evicting the least recently used; an answer
        over the per-entry limit is not kept. True if it was."""
        settings = self._settings()
        self._drop(key)
        if (
            len(answer.body) > settings.max_entry_bytes
            or answer.size > settings.usage_cache_max_bytes
        ):
            return False
        self._purge_stale(settings.usage_cache_seconds)
        while self._entries and (
            len(self._entries) >= settings.usage_cache_max_entries
            or self._bytes + answer.size > settings.usage_cache_max_bytes
        ):
            self._drop(next(iter(self._entries)))
        self._entries[key] = answer
        self._bytes += answer.size
        return True

    def _purge_stale(self, ttl: float) -> None:
        now = self._clock()
        for key in [k for k, a in self._entries.items() if not is_fresh(a, now, ttl)]:
            self._drop(key)

    def _drop(self, key: CacheKey) -> None:
        answer = self._entries.pop(key, None)
        if answer is not None:
            self._bytes -= answer.size
