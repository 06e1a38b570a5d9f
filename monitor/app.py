"""The app factory: one aiohttp application serving `/metrics`, health, and the proxy.

`create_app` only wires collaborators together; the upstream session and the scheduler
are opened in `cleanup_ctx` generators when the app starts and closed when it stops.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib import resources

from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.config import Config, ConfigError
from monitor.metrics import ProxyMetrics, UsageExposition, build_registry, metrics_handler
from monitor.poller import Poller
from monitor.proxy import add_proxy_routes
from monitor.state import ReloadStatus, UsageStore
from monitor.status import add_status_routes
from monitor.upstream import UpstreamClient


@dataclass
class LiveConfig:
    """The config in force; `current` is replaced when SIGHUP reloads the file."""

    current: Config


CONFIG_KEY = web.AppKey("config", LiveConfig)
STORE_KEY = web.AppKey("store", UsageStore)
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)
PROXY_METRICS_KEY = web.AppKey("proxy_metrics", ProxyMetrics)
UPSTREAM_KEY = web.AppKey("upstream", UpstreamClient)
POLLER_KEY = web.AppKey("poller", Poller)
log = logging.getLogger("monitor")

RELOAD_KEY = web.AppKey("reload", ReloadStatus)
CLOCK_KEY: web.AppKey[Callable[[], float]] = web.AppKey("clock")


def create_app(
    config: Config,
    *,
    store: UsageStore | None = None,
    clock: Callable[[], float] = time.time,
    poll: bool = True,
) -> web.Application:
    """Build the application. `poll=False` serves without polling (the store then only
    changes through the proxy's passive refresh)."""
    store = store if store is not None else UsageStore()
    reload_status = ReloadStatus(successful=True, last_success=clock())
    registry, proxy_metrics = build_registry(reload_status)
    upstream = UpstreamClient(config.upstream)
    poller = Poller(config, store, upstream, clock=clock)

    app = web.Application()
    app[CONFIG_KEY] = LiveConfig(config)
    app[STORE_KEY] = store
    app[REGISTRY_KEY] = registry
    app[PROXY_METRICS_KEY] = proxy_metrics
    app[UPSTREAM_KEY] = upstream
    app[POLLER_KEY] = poller
    app[CLOCK_KEY] = clock
    app[RELOAD_KEY] = reload_status

    app.cleanup_ctx.append(_upstream_session)
    if poll:
        app.cleanup_ctx.append(_polling)
    else:
        poller.apply_targets()

    app.router.add_get("/metrics", metrics_handler(UsageExposition(store), registry))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    add_proxy_routes(app)
    app.router.add_get("/openapi.yaml", openapi_document)
    add_status_routes(app)
    return app


async def _upstream_session(app: web.Application) -> AsyncIterator[None]:
    upstream = app[UPSTREAM_KEY]
    await upstream.open()
    yield
    await upstream.close()


async def _polling(app: web.Application) -> AsyncIterator[None]:
    poller = app[POLLER_KEY]
    await poller.start()
    yield
    await poller.stop()


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def openapi_document(request: web.Request) -> web.Response:
    """The proxy's OpenAPI description, shipped inside the package."""
    text = resources.files("monitor").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return web.Response(text=text, content_type="application/yaml")


async def readyz(request: web.Request) -> web.Response:
    """Ready once every org has had its first poll (whatever its result) and every account
    its first discovery."""
    pending_orgs = [{"org": t.name, "org_uuid": t.uuid} for t in request.app[STORE_KEY].pending()]
    pending_accounts = request.app[POLLER_KEY].pending_accounts()
    body = {
        "status": "waiting" if pending_orgs or pending_accounts else "ready",
        "orgs": len(request.app[STORE_KEY]),
        "pending_orgs": pending_orgs,
        "pending_accounts": pending_accounts,
    }
    return web.json_response(body, status=503 if pending_orgs or pending_accounts else 200)


def reload_config(app: web.Application, load: Callable[[], Config]) -> bool:
    """SIGHUP: read the config again. A bad file keeps the running config and logs every
    problem; a good one is applied to the upstream client and the poller in place."""
    status = app[RELOAD_KEY]
    try:
        new = load()
    except ConfigError as exc:
        status.successful = False
        for problem in exc.problems:
            log.error("reload refused, keeping the running config: %s: %s", exc.source, problem)
        return False
    old = app[CONFIG_KEY].current
    if old.server != new.server:
        log.warning("[server] changes take effect at the next restart")
    if old.upstream.max_connections != new.upstream.max_connections:
        log.warning("[upstream].max_connections takes effect at the next restart")
    app[CONFIG_KEY].current = new
    app[UPSTREAM_KEY].reconfigure(new.upstream)
    app[POLLER_KEY].reload(new)
    status.successful = True
    status.last_success = app[CLOCK_KEY]()
    log.info("config reloaded: %d org(s) polled", len(app[STORE_KEY]))
    return True
