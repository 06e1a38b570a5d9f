"""The pass-through proxy: the routes of `monitor.proxy_routes`, forwarded as they are.

Each request is checked locally first (path, parameters, credentials, body; see
`proxy_rules`), then forwarded over the one upstream `ClientSession` with the caller's own
headers, and the answer is streamed back byte for byte. The proxy makes an answer itself
only when it refuses a request or cannot get one from the upstream, always as a JSON error.
Usage reads may also be answered from memory, with the upstream's own bytes, by the usage
cache or the rate-limit shield when those are on (see `usage_reads`).

The `code` label of `claude_proxy_requests_total` is the status sent to the caller; a caller
that hangs up before anything was sent is counted as 499 (nginx's "client closed request").
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from yarl import URL

from monitor.config_source import ConfigSource
from monitor.limiter import Limiter
from monitor.metrics import ProxyMetrics
from monitor.passive_refresh import UsageTee, decode_usage, orgs_polling
from monitor.proxy_errors import (
    ProxyError,
    method_not_allowed,
    not_found,
    proxy_unavailable,
    too_large,
    upstream_busy,
    upstream_failure,
)
from monitor.proxy_routes import ROUTES, UNMATCHED, Outcome, Route, method_label
from monitor.proxy_rules import (
    MAX_REQUEST_BODY_BYTES,
    SKIP_AUTO_HEADERS,
    caller_credential,
    check_content_length,
    check_credentials,
    check_memory_query,
    check_path_params,
    check_raw_path,
    check_web_fetch_body,
    forward_request_headers,
    raw_query,
    response_headers,
    upstream_url,
)
from monitor.relay import Copy, relay_answer
from monitor.schema import Config, proxy_connection_share
from monitor.shield import RateLimitShield
from monitor.state import UsageStore
from monitor.upstream import UpstreamClient
from monitor.usage_cache import Capture, UsageCache
from monitor.usage_reads import UsageReads

log = logging.getLogger("monitor.proxy")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Proxy:
    """The proxy's handlers. Settings are read from `config` per request, so a reload
    (new orgs, base URLs, timeout, cache and shield settings) applies to the next one.
    Usage reads go through `UsageReads` (the cache and the rate-limit shield)."""

    def __init__(
        self,
        config: ConfigSource,
        store: UsageStore,
        upstream: UpstreamClient,
        metrics: ProxyMetrics,
        *,
        shield: RateLimitShield | None = None,
        cache: UsageCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._store = store
        self._upstream = upstream
        self._metrics = metrics
        shield = shield if shield is not None else RateLimitShield(config, clock)
        if cache is None:
            cache = UsageCache(lambda: config.current.proxy, clock)
        self._reads = UsageReads(config, shield, cache, metrics.count_cache, clock)
        # Back-pressure: the upstream connections the proxy may hold at once, its share of
        # the pool it shares with the poller (see `proxy_connection_share`).
        self._slots = Limiter(self._capacity)
        self._settings: _Settings | None = None

    def _current(self) -> _Settings:
        """What every request reads of the config, worked out again only after a reload."""
        config = self._config.current
        settings = self._settings
        if settings is None or settings.config is not config:
            settings = self._settings = _Settings(
                config,
                self._reads.active,
                {str(org.uuid): org.base_url for org in config.orgs if org.base_url},
                proxy_connection_share(config.upstream.max_connections, config.poll.concurrency),
            )
        return settings

    def _capacity(self) -> int:
        return self._current().capacity

    def add_routes(self, app: web.Application) -> None:
        """Serve every route on `app`, plus the local 404 for anything else under /api/.

        Every method is routed to the proxy's handler, which answers a wrong one with a
        JSON 405 and `Allow` (aiohttp's own 405 would be plain text).
        """
        for route in ROUTES:
            app.router.add_route("*", route.path, self.handler(route), name=f"proxy_{route.name}")
        # `[\s\S]`, not `.`: a decoded path may hold a newline (`/api/%0A`), and must still
        # get the JSON 404 rather than aiohttp's plain-text one.
        app.router.add_route(
            "*", "/api/{tail:[\\s\\S]*}", self.handler(None), name="proxy_unmatched"
        )

    def handler(self, route: Route | None) -> Handler:
        return functools.partial(self.handle, route)

    async def handle(self, route: Route | None, request: web.Request) -> web.StreamResponse:
        """One request, counted once whatever happens. A caller hanging up cancels this
        handler (the server runs with `handler_cancellation=True`); the cancellation
        leaves `async with session.request(...)`, which closes the upstream request."""
        started = time.monotonic()
        outcome = Outcome()
        try:
            checked = _checked(route, request)
            body = await _read_body(request) if request.body_exists else b""
            if checked.name == "web_fetch":
                check_web_fetch_body(body)
            settings = self._current()
            if checked.reads_usage and settings.usage_reads:

                async def fetch(
                    extra: Mapping[str, str], capture: Capture | None
                ) -> web.StreamResponse:
                    return await self._forward(
                        checked, request, body, outcome, settings, extra, capture
                    )

                return await self._reads.serve(checked, request, outcome, fetch)
            return await self._forward(checked, request, body, outcome, settings)
        except ProxyError as error:
            outcome.code = error.status
            return error.response()
        except asyncio.CancelledError:
            log.debug("caller of %s went away; upstream request cancelled", _name(route))
            raise
        except Exception:
            outcome.code = 500  # aiohttp answers an unexpected error with a 500
            raise
        finally:
            self._metrics.observe(
                _name(route), method_label(request.method), outcome.code, time.monotonic() - started
            )

    def _base_url(self, route: Route, org_uuid: str | None, settings: _Settings) -> str:
        """The org's own base URL when it has one (configured or discovered), else the
        default upstream; `[proxy] oauth_base_url` for the OAuth routes. Never anything the
        caller chose."""
        config = settings.config
        if route.is_oauth:
            return config.proxy.oauth_base_url
        if org_uuid is None:
            return config.upstream.base_url
        state = self._store.get(org_uuid)
        if state is not None:  # polled here: its target already holds the right URL
            return state.target.base_url
        # Configured but not polled by this replica (another shard).
        return settings.org_urls.get(org_uuid, config.upstream.base_url)

    async def _forward(
        self,
        route: Route,
        request: web.Request,
        body: bytes,
        outcome: Outcome,
        settings: _Settings,
        extra: Mapping[str, str] | None = None,
        capture: Capture | None = None,
    ) -> web.StreamResponse:
        params = request.match_info
        # Checked against the UUID pattern already: lower case is its canonical form.
        org_uuid = params["org_uuid"].lower() if route.has_org else None
        url = upstream_url(
            self._base_url(route, org_uuid, settings),
            route.upstream_path(params),
            raw_query(request.raw_path),
        )
        # One deadline for the whole exchange, headers and body: an upstream that answers
        # its headers, then drips its body, cannot hold a slot past `timeout_seconds`.
        timeout = self._upstream.timeout
        try:
            session = self._upstream.session
        except RuntimeError:
            raise proxy_unavailable() from None
        if not self._slots.try_acquire():  # the usual case: a slot is free, no timer
            await self._wait_for_slot()
        try:
            async with session.request(
                request.method,
                url,
                headers=forward_request_headers(request.headers),
                data=body if body or request.method == "POST" else None,
                skip_auto_headers=SKIP_AUTO_HEADERS,
                allow_redirects=False,
                auto_decompress=False,
                timeout=timeout,
            ) as answer:
                headers = response_headers(answer.headers)
                if capture is not None:
                    capture.start(answer.status, answer.reason or "", headers.items())
                if extra:
                    headers.update(extra)
                refreshed = self._refreshed_by(route, request, answer, org_uuid, url)
                tee = UsageTee() if refreshed else None
                copies: tuple[Copy, ...] = ()
                if capture is not None or tee is not None:
                    copies = tuple(c for c in (capture, tee) if c is not None)
                response, whole = await relay_answer(
                    route.name, request, answer, headers, outcome, copies
                )
                if whole and capture is not None:
                    capture.complete = True
                if whole and tee is not None:
                    self._refresh(refreshed, tee, answer)
                return response
        except (TimeoutError, aiohttp.ClientError) as exc:
            seconds = settings.config.upstream.timeout_seconds
            error = upstream_failure(exc, url, seconds)
            if error is None:
                raise
            raise error from None
        finally:
            self._slots.release()

    async def _wait_for_slot(self) -> None:
        """Wait at most `[upstream] pool_wait_seconds` for one of the proxy's upstream
        connections; past that the request is refused with 503 instead of queueing."""
        wait = self._config.current.upstream.pool_wait_seconds
        try:
            async with asyncio.timeout(wait):
                await self._slots.acquire()
        except TimeoutError:
            raise upstream_busy(self._slots.capacity, wait) from None

    def _refreshed_by(
        self,
        route: Route,
        request: web.Request,
        answer: aiohttp.ClientResponse,
        org_uuid: str | None,
        url: URL,
    ) -> list[str]:
        """The polled orgs whose snapshot this answer refreshes: the org of a `usage`
        read; for `oauth_usage`, every org that polls this same URL with the caller's
        credential (compared by fingerprint)."""
        if answer.status != 200:
            return []
        if route.name == "usage":
            return [org_uuid] if org_uuid is not None and org_uuid in self._store else []
        if route.name == "oauth_usage":
            credential = caller_credential(request.headers)
            if credential is not None:
                return orgs_polling(self._store, str(url), credential.fingerprint)
        return []

    def _refresh(self, org_uuids: list[str], tee: UsageTee, answer: aiohttp.ClientResponse) -> None:
        """Passive refresh: the relayed usage answer also updates the orgs' snapshot. Runs
        after the last byte went out; a failure here is only a debug line."""
        try:
            snapshot = decode_usage(
                tee.body(),
                answer.headers.get("Content-Encoding"),
                self._config.current.poll.max_windows_per_org,
            )
        except ValueError as exc:
            log.debug("relayed usage of %s not used for a refresh: %s", org_uuids[0], exc)
            return
        for org_uuid in org_uuids:
            if self._store.record_relayed(org_uuid, snapshot):
                log.debug("usage of %s refreshed from a relayed answer", org_uuid)


def _checked(route: Route | None, request: web.Request) -> Route:
    """The route, once the request passed every local check (else a `ProxyError`)."""
    check_raw_path(request.raw_path)
    if route is None:
        raise not_found(request.method, request.path)
    if request.method != route.method:
        raise method_not_allowed(route, request.method)
    check_path_params(request.match_info)
    if route.name == "memory":
        check_memory_query(request.query.getall("project_uuid", []))
    check_credentials(request.headers)
    check_content_length(request.headers.get("Content-Length"))
    return route


async def _read_body(request: web.Request) -> bytes:
    """The request body, refused with 413 past 64 KiB even when it arrives chunked (a
    Content-Length over the limit is refused by `_checked`)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(16 * 1024):
        size += len(chunk)
        if size > MAX_REQUEST_BODY_BYTES:
            raise too_large(MAX_REQUEST_BODY_BYTES)
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True, slots=True)
class _Settings:
    config: Config
    usage_reads: bool  # the usage cache or the shield is on
    # The base URL of each configured org that has its own, for the orgs another replica
    # polls (those polled here have it in their target).
    org_urls: Mapping[str, str]
    capacity: int  # the proxy's share of the upstream connections


def _name(route: Route | None) -> str:
    return route.name if route is not None else UNMATCHED
