"""How the proxy serves a usage read (`usage`, `oauth_usage`) once its local checks pass:
from the coalescing cache when it has the answer (or an identical read is already on its
way), from the rate-limit shield while the caller's credential is held, else upstream.

`Proxy` hands in `fetch`, which forwards the request and streams the answer back (adding
the given headers, copying the answer into a `Capture`); this module decides whether to
call it and what the answer teaches the cache and the shield.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from monitor.config_source import ConfigSource
from monitor.proxy_routes import Outcome, Route
from monitor.proxy_rules import caller_credential, credentials_digest
from monitor.shield import Hold, RateLimitShield
from monitor.upstream import parse_retry_after
from monitor.usage_cache import (
    CacheKey,
    Capture,
    StoredAnswer,
    UsageCache,
    age_seconds,
    bypasses,
    cache_key,
    may_store,
)

Fetch = Callable[[Mapping[str, str], Capture | None], Awaitable[web.StreamResponse]]
CountCache = Callable[[str, str], None]  # (endpoint, "hit" | "miss" | "bypass")
SHIELDED = {"X-Monitor-Shielded": "1"}


class UsageReads:
    def __init__(
        self,
        config: ConfigSource,
        shield: RateLimitShield,
        cache: UsageCache,
        count: CountCache,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._shield = shield
        self._count = count
        self._clock = clock
        self.cache = cache

    @property
    def active(self) -> bool:
        """Whether the cache or the shield is on: if neither is, a usage read is forwarded
        like any other request, and need not come through here."""
        return self.cache.enabled or self._shield.enabled

    async def serve(
        self, route: Route, request: web.Request, outcome: Outcome, fetch: Fetch
    ) -> web.StreamResponse:
        headers = request.headers
        # The shield's key (a hash of the token), worked out only when the shield is on.
        credential = caller_credential(headers) if self._shield.enabled else None
        fingerprint = None if credential is None else credential.fingerprint
        if not self.cache.enabled:
            return await self._upstream(request, outcome, fetch, fingerprint, None, store=False)
        path, _, query = request.raw_path.partition("?")
        key = cache_key(route.name, path, query, credentials_digest(headers), headers)
        if bypasses(headers):
            self._count(route.name, "bypass")
            store = may_store(headers)
            return await self._upstream(request, outcome, fetch, fingerprint, key, store=store)
        shared = await self._shared(key)
        if shared is not None:
            self._count(route.name, "hit")
            age = str(age_seconds(shared, self._clock()))
            return await replay(request, outcome, shared, {"X-Cache": "HIT", "Age": age})
        hold = None if fingerprint is None else self._shield.held(fingerprint)
        if hold is not None:  # not a miss: nothing goes upstream
            return await self._shielded(request, outcome, hold)
        self._count(route.name, "miss")
        return await self._upstream(request, outcome, fetch, fingerprint, key, store=True)

    async def _shared(self, key: CacheKey) -> StoredAnswer | None:
        """A fresh stored answer, or the answer of the identical read under way (None if
        there is neither, or that read brought no whole answer)."""
        fresh = self.cache.fresh(key)
        if fresh is not None:
            return fresh
        flight = self.cache.flight(key)
        return None if flight is None else await flight.wait()

    async def _upstream(
        self,
        request: web.Request,
        outcome: Outcome,
        fetch: Fetch,
        fingerprint: str | None,
        key: CacheKey | None,
        *,
        store: bool,
    ) -> web.StreamResponse:
        """Ask the upstream, unless the shield holds the credential. Nothing awaits
        between the caller's cache lookup and `take_off`, so identical reads that arrive
        from now on wait for this one."""
        hold = None if fingerprint is None else self._shield.held(fingerprint)
        if hold is not None:
            return await self._shielded(request, outcome, hold)
        watching = key is not None or self._shield.enabled
        capture = Capture(self._config.current.proxy.max_entry_bytes) if watching else None
        flight = None if key is None else self.cache.take_off(key)
        answer = None
        try:
            response = await fetch({"X-Cache": "MISS"} if key is not None else {}, capture)
            answer = None if capture is None else capture.answer(self._clock())
        finally:
            if key is not None and flight is not None:
                self.cache.land(key, flight, answer, store=store)
        if fingerprint is not None and capture is not None and capture.complete:
            self._learn(fingerprint, capture, answer)
        return response

    def _learn(self, fingerprint: str, capture: Capture, answer: StoredAnswer | None) -> None:
        """A 200 releases the credential; a 429 holds it (with the 429 to answer with)."""
        if capture.status == 200:
            self._shield.release(fingerprint)
        elif capture.status == 429:
            retry = next((v for k, v in capture.headers if k.lower() == "retry-after"), None)
            self._shield.limited(fingerprint, parse_retry_after(retry, self._clock()), answer)

    async def _shielded(
        self, request: web.Request, outcome: Outcome, hold: Hold
    ) -> web.StreamResponse:
        answer = hold.answer or _poller_saw_429(hold, self._clock())
        return await replay(request, outcome, answer, SHIELDED)


def _poller_saw_429(hold: Hold, now: float) -> StoredAnswer:
    """Only monitor's poller saw the 429 (its answer is not kept): one in the upstream's
    envelope, with `Retry-After` the rest of the hold."""
    seconds = max(1, math.ceil(hold.until - now))
    message = (
        f"rate limited: the upstream answered 429 to monitor's poll with this credential; "
        f"monitor answers for it for {seconds} s more ([proxy] shield_rate_limits)"
    )
    error = {"type": "error", "error": {"type": "rate_limit_error", "message": message}}
    body = json.dumps(error).encode()
    headers = (
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("Retry-After", str(seconds)),
    )
    return StoredAnswer(429, "Too Many Requests", headers, body, now)


async def replay(
    request: web.Request, outcome: Outcome, answer: StoredAnswer, extra: Mapping[str, str]
) -> web.StreamResponse:
    """Send a kept answer: its status, headers and bytes as they came, plus `extra`."""
    response = web.StreamResponse(status=answer.status, reason=answer.reason)
    response.headers.extend(answer.headers)
    response.headers.update(extra)
    await response.prepare(request)
    outcome.code = answer.status
    try:
        await response.write(answer.body)
        await response.write_eof()
    except ConnectionError:
        pass  # the caller went away; nothing upstream to cancel
    return response
