"""SIGHUP handling in the daemon: the file read off the loop, one reload at a time."""

from __future__ import annotations

import threading
import time

from monitor.app import Reloads
from monitor.config import ConfigError
from monitor.schema import Config
from monitor.state import UsageStore
from tests.conftest import MakeClient
from tests.support.config import make_config
from tests.support.upstream import ORG_A, ORG_C, Upstream
from tests.support.waiting import until


async def test_a_slow_load_runs_off_the_loop_and_a_burst_is_folded(
    upstream: Upstream, make_client: MakeClient
) -> None:
    store = UsageStore()
    client = await make_client(make_config(upstream.url), store=store, poll=False)
    release = threading.Event()
    loads: list[float] = []

    def slow_load() -> Config:  # as a credential command that takes its time
        loads.append(time.monotonic())
        release.wait(10)
        return make_config(upstream.url, [{"uuid": ORG_C, "token_env": "TOKEN_C"}])

    reloads = Reloads(client.app, slow_load)
    reloads.request()
    await until(lambda: len(loads) == 1, "the first load to start")
    for _ in range(4):  # HUPs while the file is being read
        reloads.request()
    # The loop keeps serving while the file is read.
    assert (await client.get("/metrics")).status == 200
    release.set()
    await reloads.settled()
    assert len(loads) == 2  # the first, then one for the four HUPs that came meanwhile
    assert [s.target.uuid for s in store] == [ORG_C]


async def test_a_refused_reload_keeps_the_running_config(
    upstream: Upstream, make_client: MakeClient
) -> None:
    store = UsageStore()
    client = await make_client(make_config(upstream.url), store=store, poll=False)

    def broken() -> Config:
        raise ConfigError(["orgs[0].uuid: not a UUID (got 'x')"], "config.toml")

    reloads = Reloads(client.app, broken)
    reloads.request()
    await reloads.settled()
    assert ORG_A in store
    text = await (await client.get("/metrics")).text()
    assert "claude_monitor_config_last_reload_successful 0.0" in text
