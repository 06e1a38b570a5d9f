"""A reload says what waits for a restart, and counts the polls in flight against the new
`[poll] concurrency`."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web

from monitor.app import reload_config
from tests.conftest import MakeClient, MakeServer
from tests.support.config import make_config
from tests.support.jobs import ManualJobs
from tests.support.waiting import until

ORGS = [
    {"uuid": f"00000000-0000-4000-8000-{n:012d}", "name": f"org{n}", "token_env": "TOKEN_A"}
    for n in range(6)
]


class HeldUpstream:
    """Answers each usage request only when the test releases one."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.release = asyncio.Semaphore(0)

    async def usage(self, _request: web.Request) -> web.Response:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await self.release.acquire()
        finally:
            self.in_flight -= 1
        return web.json_response({"five_hour": {"utilization": 1.0, "resets_at": None}})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/organizations/{org_uuid}/usage", self.usage)
        return app


async def test_a_reload_names_the_settings_that_wait_for_a_restart(
    aiohttp_server: MakeServer, driven: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    server = await aiohttp_server(HeldUpstream().app())
    url = str(server.make_url("")).rstrip("/")
    client = await driven(make_config(url, ORGS[:1]), poll=False)
    changed = make_config(url, ORGS[:1], server={"port": 4999}, upstream={"max_connections": 7})
    assert reload_config(client.app, lambda: changed)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "reload: server.port, upstream.max_connections take effect at the next restart"
    ]


async def test_polls_in_flight_count_against_a_lowered_concurrency(
    aiohttp_server: MakeServer, driven: MakeClient, jobs: ManualJobs
) -> None:
    held = HeldUpstream()
    server = await aiohttp_server(held.app())
    url = str(server.make_url("")).rstrip("/")
    # Every org has its own credential here, so only the concurrency limit holds polls.
    orgs = [{**org, "token_env": f"T{n}"} for n, org in enumerate(ORGS)]
    environ = {f"T{n}": f"token-{n}-0123456789abcdef" for n in range(len(ORGS))}
    config = make_config(url, orgs, poll={"concurrency": 3}, environ=environ)
    client = await driven(config)
    first_polls = asyncio.create_task(jobs.run_due())
    await until(lambda: held.in_flight == 3, "three polls in flight")
    lowered = make_config(url, orgs, poll={"concurrency": 1}, environ=environ)
    assert reload_config(client.app, lambda: lowered)
    held.release.release()  # one of the three answers: two are still in flight
    await until(lambda: held.in_flight == 2, "the answered poll to end")
    await asyncio.sleep(0.05)  # give the loop a chance to (wrongly) start another poll
    assert held.in_flight == 2  # none started: two in flight is over the new limit of 1
    for _ in range(len(ORGS) - 1):
        held.release.release()
    await asyncio.wait_for(first_polls, 10)
    assert held.most == 3  # never more than the limit in force when each poll started
