"""`/healthz`, `/readyz` and `/openapi.yaml`: the endpoints that describe the daemon itself."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

from aiohttp import web

from monitor.state import UsageStore

# What `/healthz` answers; `monitor healthcheck` checks for exactly this, so another
# service answering on the port cannot pass for monitor.
HEALTHY = {"status": "ok", "service": "claude-monitor"}


async def healthz(request: web.Request) -> web.Response:
    """200 while the process serves."""
    return web.json_response(HEALTHY)


async def openapi_document(request: web.Request) -> web.Response:
    """The proxy's OpenAPI description, shipped inside the package."""
    text = resources.files("monitor").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return web.Response(text=text, content_type="application/yaml")


class Readiness:
    """`/readyz`: ready once every org has had its first poll (whatever its result) and
    every account its first discovery; until then 503 with what is still pending."""

    def __init__(self, store: UsageStore, pending_accounts: Callable[[], list[str]]) -> None:
        self._store = store
        self._pending_accounts = pending_accounts

    async def handle(self, request: web.Request) -> web.Response:
        pending_orgs = [{"org": t.name, "org_uuid": t.uuid} for t in self._store.pending()]
        pending_accounts = self._pending_accounts()
        waiting = bool(pending_orgs or pending_accounts)
        body = {
            "status": "waiting" if waiting else "ready",
            "orgs": len(self._store),
            "pending_orgs": pending_orgs,
            "pending_accounts": pending_accounts,
        }
        return web.json_response(body, status=503 if waiting else 200)
