"""The app factory: one aiohttp application serving `/metrics`, health, and the proxy.

`create_app` only wires collaborators together; the upstream session and the scheduler
are opened in `cleanup_ctx` generators when the app starts and closed when it stops.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from monitor.config import Config
from monitor.metrics import ProxyMetrics, build_registry
from monitor.poller import Poller
from monitor.state import OrgTarget, UsageStore
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
CLOCK_KEY: web.AppKey[Callable[[], float]] = web.AppKey("clock")


def create_app(
    config: Config,
    *,
    store: UsageStore | None = None,
    clock: Callable[[], float] = time.time,
    select: Callable[[OrgTarget], bool] | None = None,
    poll: bool = True,
) -> web.Application:
    """Build the application. `poll=False` serves without polling (the store then only
    changes through the proxy's passive refresh); `select` keeps a subset of the orgs
    (sharding)."""
    store = store if store is not None else UsageStore()
    registry, proxy_metrics = build_registry(store)
    upstream = UpstreamClient(config.upstream)
    poller = Poller(config, store, upstream, clock=clock, select=select or _every_org)

    app = web.Application()
    app[CONFIG_KEY] = LiveConfig(config)
    app[STORE_KEY] = store
    app[REGISTRY_KEY] = registry
    app[PROXY_METRICS_KEY] = proxy_metrics
    app[UPSTREAM_KEY] = upstream
    app[POLLER_KEY] = poller
    app[CLOCK_KEY] = clock

    app.cleanup_ctx.append(_upstream_session)
    if poll:
        app.cleanup_ctx.append(_polling)
    else:
        poller.apply_targets()

    app.router.add_get("/metrics", make_aiohttp_handler(registry))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


def _every_org(_target: OrgTarget) -> bool:
    return True


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
