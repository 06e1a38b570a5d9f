"""Small fake upstreams for what the simulator does not act out: slow answers, counted."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from aiohttp import web

USAGE_PATH = "/api/organizations/{org_uuid}/usage"
USAGE = {"five_hour": {"utilization": 12.0, "resets_at": None}}


class SlowUpstream:
    """Answers every request after `delay` seconds (usage requests after `usage_delay`, if
    given), counting requests in flight in all and per credential. Usage answers are a
    small usage payload; every other path answers `body`."""

    def __init__(
        self, delay: float, *, usage_delay: float | None = None, body: bytes = b"{}"
    ) -> None:
        self.delay = delay
        self.usage_delay = delay if usage_delay is None else usage_delay
        self.body = body
        self.started = asyncio.Event()  # set when a request reaches a slow answer
        self.in_flight = 0
        self.max_in_flight = 0
        self.served = 0
        self.seen: list[str] = []  # the org of every usage request, in order
        self.by_credential: Counter[str] = Counter()  # in flight now, per Authorization
        self.most_by_credential: Counter[str] = Counter()

    async def _answer(self, request: web.Request, delay: float) -> None:
        credential = request.headers.get("Authorization", "")
        self.in_flight += 1
        self.by_credential[credential] += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.most_by_credential[credential] = max(
            self.most_by_credential[credential], self.by_credential[credential]
        )
        if delay > 0:
            self.started.set()
        try:
            await asyncio.sleep(delay)
        finally:
            self.in_flight -= 1
            self.by_credential[credential] -= 1
        self.served += 1

    async def usage(self, request: web.Request) -> web.Response:
        self.seen.append(request.match_info["org_uuid"])
        await self._answer(request, self.usage_delay)
        return web.Response(body=json.dumps(USAGE).encode(), content_type="application/json")

    async def other(self, request: web.Request) -> web.Response:
        await self._answer(request, self.delay)
        return web.Response(body=self.body, content_type="application/json")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(USAGE_PATH, self.usage)
        app.router.add_route("*", "/{tail:.*}", self.other)
        return app
