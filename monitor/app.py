"""The app factory: builds every part with what it needs and serves them on one app.

`create_app` wires by constructor (the store, the upstream client, the running config,
the clock, the job scheduler) and registers the routes of `/metrics`, the status page,
health and the proxy. It opens nothing itself: the upstream session and the polling
start in `cleanup_ctx` generators when the app starts, and stop after their `yield`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web

from monitor.config import ConfigError
from monitor.config_source import ConfigSource
from monitor.discovery import Discovery
from monitor.exposition import UsageExposition
from monitor.health import Readiness, healthz, openapi_document
from monitor.heap import HeapFreezer
from monitor.jobs import APSchedulerJobs, JobScheduler
from monitor.metrics import build_registry, metrics_handler, render_exposition
from monitor.otlp import OtlpExports, OtlpPush
from monitor.poller import Poller
from monitor.proxy import Proxy
from monitor.schema import Config
from monitor.shield import RateLimitShield
from monitor.state import UsageStore
from monitor.status import StatusPage
from monitor.targets import Targets
from monitor.upstream import UpstreamClient
from monitor.usage_cache import UsageCache

log = logging.getLogger("monitor")


@dataclass(frozen=True)
class Parts:
    """The daemon's parts, each built with the collaborators it needs."""

    config: ConfigSource
    clock: Callable[[], float]
    store: UsageStore
    upstream: UpstreamClient
    jobs: JobScheduler
    targets: Targets
    poller: Poller
    discovery: Discovery
    shield: RateLimitShield  # what the poller and the proxy know of rate-limited credentials
    cache: UsageCache  # the proxy's usage answers, when [proxy] usage_cache_seconds is on


def wire(
    config: Config,
    *,
    store: UsageStore | None = None,
    clock: Callable[[], float] = time.time,
    jobs: JobScheduler | None = None,
    cache: UsageCache | None = None,
    freeze_heap: HeapFreezer | None = None,
) -> Parts:
    """Build the polling side: the running config, the store, the upstream client (not
    opened), the targets, the poller and discovery, sharing one job scheduler; and the
    rate-limit shield the poller shares with the proxy. `freeze_heap` is told when every
    org has had its first poll."""
    source = ConfigSource(config, loaded_at=clock())
    store = store if store is not None else UsageStore(clock)
    jobs = jobs if jobs is not None else APSchedulerJobs()
    upstream = UpstreamClient(source)
    targets = Targets(source, clock)
    shield = RateLimitShield(source, clock)
    all_polled = None if freeze_heap is None else functools.partial(freeze_heap, "every org polled")
    poller = Poller(
        source, targets, store, upstream, jobs, clock=clock, shield=shield, on_all_polled=all_polled
    )
    discovery = Discovery(
        source, targets, upstream, jobs, on_change=poller.apply_targets, clock=clock
    )
    if cache is None:
        cache = UsageCache(lambda: source.current.proxy, clock)
    return Parts(source, clock, store, upstream, jobs, targets, poller, discovery, shield, cache)


_PARTS = web.AppKey("parts", Parts)
_OTLP = web.AppKey("otlp", OtlpPush)


def create_app(
    config: Config,
    *,
    store: UsageStore | None = None,
    clock: Callable[[], float] = time.time,
    jobs: JobScheduler | None = None,
    cache: UsageCache | None = None,
    poll: bool = True,
    freeze_heap: HeapFreezer | None = None,
) -> web.Application:
    """Build the application. `poll=False` serves without polling (the store then only
    changes through the proxy's passive refresh); `jobs` replaces APScheduler, so tests
    can drive time; `store` and `cache` are the caller's to look into. `freeze_heap`
    (the daemon's is `monitor.heap.freeze_long_lived`) runs once start-up is done and
    again when every org has had its first poll."""
    parts = wire(config, store=store, clock=clock, jobs=jobs, cache=cache, freeze_heap=freeze_heap)
    source, store, upstream = parts.config, parts.store, parts.upstream
    poller, discovery, jobs = parts.poller, parts.discovery, parts.jobs
    registry, proxy_metrics = build_registry(source)
    proxy = Proxy(
        source, store, upstream, proxy_metrics, shield=parts.shield, cache=parts.cache, clock=clock
    )

    app = web.Application()
    app[_PARTS] = parts

    async def upstream_session(_app: web.Application) -> AsyncIterator[None]:
        await upstream.open()
        yield
        await upstream.close()

    async def polling(_app: web.Application) -> AsyncIterator[None]:
        jobs.start()
        poller.start()
        discovery.start()
        if freeze_heap is not None:
            freeze_heap("start-up")
        yield
        discovery.stop()
        poller.stop()
        await jobs.stop()

    exposition = UsageExposition(store, lambda: discovery.accounts)
    # `[otlp]` pushes exactly what a scrape asking for OpenMetrics reads.
    push = OtlpPush(
        source, lambda: render_exposition(exposition, registry, True), jobs, clock=clock
    )
    registry.register(OtlpExports(push))
    app[_OTLP] = push

    async def otlp_push(_app: web.Application) -> AsyncIterator[None]:
        push.start()
        yield
        await push.stop()

    app.cleanup_ctx.append(upstream_session)
    if poll:
        app.cleanup_ctx.append(polling)
    else:
        poller.apply_targets()
    app.cleanup_ctx.append(otlp_push)

    app.router.add_get("/metrics", metrics_handler(exposition, registry))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", Readiness(store, discovery.pending_accounts).handle)
    app.router.add_get("/openapi.yaml", openapi_document)
    app.router.add_get("/", StatusPage(store, source, clock).handle)
    proxy.add_routes(app)
    return app


def otlp_push(app: web.Application) -> OtlpPush:
    """The app's OTLP push (tests drive it with `await otlp_push(app).push()`)."""
    return app[_OTLP]


def reload_config(app: web.Application, load: Callable[[], Config]) -> bool:
    """SIGHUP: read the config again. A bad file keeps the running config and logs every
    problem; a good one applies at once, but for the restart-only settings (named in a
    warning when they changed)."""
    running = app[_PARTS]
    try:
        new = load()
    except ConfigError as exc:
        running.config.refused()
        for problem in exc.problems:
            log.error("reload refused, keeping the running config: %s: %s", exc.source, problem)
        return False
    waiting = running.config.replace(new, at=running.clock())
    if waiting:
        log.warning(
            "reload: %s take%s effect at the next restart",
            ", ".join(waiting),
            "s" if len(waiting) == 1 else "",
        )
    running.discovery.config_changed()
    running.poller.config_changed()
    app[_OTLP].config_changed()
    log.info("config reloaded: %d org(s) polled", len(running.store))
    return True


class Reloads:
    """SIGHUP: read the file in a thread (a credential command may take seconds, and the
    loop must keep serving meanwhile), apply one reload at a time, and fold the HUPs that
    arrive during a reload into one more."""

    def __init__(self, app: web.Application, load: Callable[[], Config]) -> None:
        self._app = app
        self._load = load
        self._wanted = False
        self._task: asyncio.Task[None] | None = None

    def request(self) -> None:
        """The signal handler: ask for a reload (never more than one runs at a time)."""
        self._wanted = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def settled(self) -> None:
        """Wait until every reload asked for so far has been applied (for tests)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        while self._wanted:
            self._wanted = False
            loaded = await asyncio.to_thread(_load_or_refusal, self._load)
            reload_config(self._app, functools.partial(_config_or_raise, loaded))


def _load_or_refusal(load: Callable[[], Config]) -> Config | ConfigError:
    try:
        return load()
    except ConfigError as exc:
        return exc


def _config_or_raise(loaded: Config | ConfigError) -> Config:
    if isinstance(loaded, ConfigError):
        raise loaded
    return loaded
