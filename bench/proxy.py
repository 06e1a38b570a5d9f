"""The proxy scenario: monitor's proxy next to references, all in front of one upstream.

Targets, each its own process, all started once and measured in interleaved rounds (every
target at the low then the high connection count, then again) so drift hits them alike:

- `direct`: the upstream itself, a static nginx (`return 200` of the usage payload);
- `nginx`: nginx as a reverse proxy in front of it (keepalive, access log off, 1 worker);
- `floor`: the minimal aiohttp relay `bench/floor.py`, the Python floor;
- `monitor`: `python -m monitor run`, one org, default log level (access log on);
- `floor-uvloop`, `monitor-uvloop`: the same two on uvloop, when it is installed.

Without nginx the upstream is the Python app of `bench/upstream.py` and the result says
that its ratios are not comparable to the documented ones.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.daemon import DaemonSpec, start_daemon, wait_started
from bench.load import AUTH_VALUE, LoadResult, run_load, wrk_path
from bench.loops import LoopPlan
from bench.nginx import start_proxy, start_static
from bench.procs import HOST, Processes, free_port, wait_http
from bench.ratios import proxy_ratios
from bench.sizes import Sizes
from bench.stats import summarize
from bench.upstream import PAYLOAD_CONTENT_TYPE, org_uuid, start_upstream, usage_payload

# An org the daemon is not configured with: a usage read it relays without the store.
PROXY_PATH = f"/api/organizations/{org_uuid(999_999)}/usage"
NO_NGINX = (
    "nginx not installed: the proxy scenario ran against the Python upstream "
    "(bench/upstream.py, about 10k req/s), which holds every target back, so these ratios "
    "are not comparable to the documented ones"
)
NO_WRK = (
    "wrk not used: the load came from the Python generator, slower than the targets, so "
    "the ratios are not comparable to the documented ones"
)
LOAD_KEYS = ("rps", "p50_ms", "p99_ms")

JSON = dict[str, Any]


@dataclass
class Target:
    name: str
    loop: str  # the event loop of a Python target; "-" for nginx
    url: str | None = None
    skipped: str | None = None


async def proxy_scenario(
    procs: Processes,
    sizes: Sizes,
    workdir: Path,
    *,
    nginx: str | None,
    use_wrk: bool,
    plan: LoopPlan,
) -> JSON:
    upstream_url, upstream_port, reference = await _start_upstream(procs, workdir, nginx)
    targets = await _start_targets(procs, workdir, nginx, upstream_url, upstream_port, plan)
    live = [t for t in targets if t.url is not None]
    await _check_same_answer(live, upstream_url)
    if sizes.proxy_warmup_seconds > 0:
        for target in live:
            assert target.url is not None
            await run_load(
                target.url + PROXY_PATH,
                sizes.proxy_connections[1],
                sizes.proxy_warmup_seconds,
                use_wrk=use_wrk,
            )
    measured: dict[tuple[str, int], list[LoadResult]] = {}
    for _round in range(sizes.repeats):
        for connections in sizes.proxy_connections:
            for target in live:
                assert target.url is not None
                result = await run_load(
                    target.url + PROXY_PATH, connections, sizes.proxy_seconds, use_wrk=use_wrk
                )
                measured.setdefault((target.name, connections), []).append(result)
    rows = _rows(targets, sizes.proxy_connections, measured)
    notes = [] if nginx is not None else [NO_NGINX]
    tool = "wrk" if use_wrk and wrk_path() is not None else "aiohttp"
    if tool != "wrk":
        notes.append(NO_WRK)
    return {
        "tool": tool,
        "seconds": sizes.proxy_seconds,
        "rounds": sizes.repeats,
        "path": PROXY_PATH,
        "reference": reference,
        "comparable": not notes,
        "notes": notes,
        "rows": rows,
        "ratios": proxy_ratios(rows, sizes.proxy_connections),
    }


async def _start_upstream(
    procs: Processes, workdir: Path, nginx: str | None
) -> tuple[str, int, str]:
    if nginx is None:
        upstream = await start_upstream(procs, "upstream-proxy")
        return upstream.url, upstream.port, "python upstream (bench/upstream.py)"
    process, url = start_static(procs, nginx, workdir, usage_payload(), PAYLOAD_CONTENT_TYPE)
    await wait_http(url + PROXY_PATH, process, within=30)
    return url, int(url.rsplit(":", 1)[1]), "static nginx (return 200 of the usage payload)"


async def _start_targets(
    procs: Processes,
    workdir: Path,
    nginx: str | None,
    upstream_url: str,
    upstream_port: int,
    plan: LoopPlan,
) -> list[Target]:
    targets = [Target("direct", "-", upstream_url)]
    if nginx is None:
        targets.append(Target("nginx", "-", skipped="skipped: nginx not installed"))
    else:
        process, url = start_proxy(procs, nginx, workdir, upstream_port)
        await wait_http(url + PROXY_PATH, process, within=30)
        targets.append(Target("nginx", "-", url))
    targets.append(await _start_floor(procs, upstream_url, "asyncio", None))
    targets.append(await _start_monitor(procs, workdir, upstream_url, plan.default_key, None))
    targets.append(await _start_floor(procs, upstream_url, "uvloop", plan.floor_uvloop_skip))
    targets.append(
        await _start_monitor(procs, workdir, upstream_url, "uvloop", plan.monitor_uvloop_skip)
    )
    return targets


async def _start_floor(
    procs: Processes, upstream_url: str, loop: str, skipped: str | None
) -> Target:
    name = "floor" if loop == "asyncio" else f"floor-{loop}"
    if skipped is not None:
        return Target(name, loop, skipped=skipped)
    port = free_port()
    argv = [sys.executable, "-m", "bench.floor", "--port", str(port)]
    process = procs.start(name, [*argv, "--upstream", upstream_url, "--loop", loop])
    url = f"http://{HOST}:{port}"
    await wait_http(url + PROXY_PATH, process, within=30)
    return Target(name, loop, url)


async def _start_monitor(
    procs: Processes, workdir: Path, upstream_url: str, key: str | None, skipped: str | None
) -> Target:
    name = "monitor" if key in (None, "asyncio") else f"monitor-{key}"
    loop = key or "asyncio"
    if skipped is not None:
        return Target(name, loop, skipped=skipped)
    spec = DaemonSpec(orgs=1, upstream_url=upstream_url, event_loop=key)
    daemon = start_daemon(procs, spec, workdir, f"{name}-proxy")
    await wait_started(daemon, within=60)  # `_check_same_answer` then tries the proxy path
    return Target(name, loop, daemon.url)


async def _check_same_answer(targets: list[Target], upstream_url: str) -> None:
    """Every target must relay the upstream's status, Content-Type and exact bytes, or the
    comparison is void."""
    expected = await _answer(upstream_url + PROXY_PATH)
    for target in targets:
        assert target.url is not None
        got = await _answer(target.url + PROXY_PATH)
        if got != expected:
            raise RuntimeError(
                f"{target.name} answered {got[0]} {got[1]!r} with {len(got[2])} bytes, "
                f"not the upstream's {expected[0]} {expected[1]!r} with {len(expected[2])}"
            )


async def _answer(url: str) -> tuple[int, str, bytes]:
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(url, headers={"Authorization": AUTH_VALUE}, timeout=timeout) as resp,
    ):
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


def _rows(
    targets: list[Target],
    connections: tuple[int, int],
    measured: dict[tuple[str, int], list[LoadResult]],
) -> list[JSON]:
    rows: list[JSON] = []
    for target in targets:
        if target.skipped is not None:
            rows.append({"target": target.name, "loop": target.loop, "skipped": target.skipped})
            continue
        for count in connections:
            runs = [r.to_json() for r in measured[target.name, count]]
            rows.append(
                {
                    "target": target.name,
                    "loop": target.loop,
                    "connections": count,
                    **summarize(runs, LOAD_KEYS),
                    "errors": sum(run["errors"] for run in runs),
                    "runs": runs,
                }
            )
    return rows
