"""The Python upstream the poll scenarios point monitor at, in its own process.

`python -m bench.upstream --port P [--delay S] [--simulator --orgs N]`

(The proxy scenarios use a static nginx instead, `bench/nginx.py`, answering the same
payload bytes with the same Content-Type; this app is their fallback without nginx.)

- fast (default): a minimal aiohttp app answering every GET/POST with one fixed usage
  payload (rendered once by the simulator, seed shape). Requests whose bearer token starts
  with `poll-` (monitor's own polls) wait `--delay` seconds first; the proxy benchmark's
  `Bearer x` never waits.
- `--simulator`: the project's simulator with N orgs, one account (own token) per org, and
  `Fault(delay=...)` for every route; a faithful upstream, but its credential lookup scans
  every account, so at 10,000 accounts the simulator itself becomes the bottleneck.

Both count monitor's polls per org. `GET /_bench/stats` reports when the first poll
arrived, when the last of the `expect` orgs got its first answer, and the CPU time of the
watched process (`pid`) at both moments; `POST /_bench/reset?expect=N&pid=P` starts over.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from bench.procs import HOST, Processes, cpu_seconds, free_port, wait_http

POLL_TOKEN_PREFIX = "poll-"  # noqa: S105 (a prefix, not a secret)
PAYLOAD_CONTENT_TYPE = "application/json"  # the static nginx upstream sends the same
STATS_PATH = "/_bench/stats"
RESET_PATH = "/_bench/reset"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def org_uuid(index: int) -> str:
    """The benchmark's org uuids: stable, valid version-4 UUIDs."""
    return f"{index + 1:08x}-0000-4000-8000-{index:012x}"


def poll_token(index: int) -> str:
    # Short: at 30,000 orgs every token is in the daemon's environment, and execve's
    # limit on the environment is about 2 MB.
    return f"{POLL_TOKEN_PREFIX}{index:06d}"


def usage_payload() -> bytes:
    from monitor.simulator import Simulator

    sim = Simulator()
    sim.add_org(org_uuid(0), "bench", shape="seed")
    sim.set_utilization(org_uuid(0), "claude_code", 42.5)
    return json.dumps(sim.usage(org_uuid(0))).encode()


@dataclass
class Stats:
    expect: int = 0
    pid: int | None = None
    polls: int = 0
    answered: set[str] = field(default_factory=set)
    first_at: float | None = None
    done_at: float | None = None
    cpu_first: float | None = None
    cpu_done: float | None = None

    def reset(self, expect: int, pid: int | None) -> None:
        self.__init__(expect=expect, pid=pid)  # type: ignore[misc]

    def on_request(self, org: str | None) -> None:
        if org is None:
            return
        self.polls += 1
        if self.first_at is None:
            self.first_at = time.time()
            self.cpu_first = self._cpu()

    def on_answered(self, org: str | None) -> None:
        if org is None or self.done_at is not None:
            return
        self.answered.add(org)
        if self.expect and len(self.answered) >= self.expect:
            self.done_at = time.time()
            self.cpu_done = self._cpu()

    def _cpu(self) -> float | None:
        if self.pid is None:
            return None
        try:
            return cpu_seconds(self.pid)
        except OSError:
            return None

    def to_json(self) -> dict[str, object]:
        return {
            "expect": self.expect,
            "polls": self.polls,
            "answered": len(self.answered),
            "first_at": self.first_at,
            "done_at": self.done_at,
            "cpu_first": self.cpu_first,
            "cpu_done": self.cpu_done,
        }


STATS_KEY = web.AppKey("stats", Stats)


def _poll_org(request: web.Request) -> str | None:
    """The org of one of monitor's own usage polls, else None."""
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer " + POLL_TOKEN_PREFIX):
        return None
    return request.match_info.get("org_uuid")


@web.middleware
async def counting(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/_bench/"):
        return await handler(request)
    stats = request.app[STATS_KEY]
    org = _poll_org(request)
    stats.on_request(org)
    response = await handler(request)
    if response.status == 200:
        stats.on_answered(org)
    return response


async def stats_handler(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATS_KEY].to_json())


async def reset_handler(request: web.Request) -> web.Response:
    pid = request.query.get("pid")
    stats = request.app[STATS_KEY]
    stats.reset(int(request.query.get("expect", "0")), int(pid) if pid else None)
    return web.json_response(stats.to_json())


def fast_app(delay: float) -> web.Application:
    body = usage_payload()

    async def answer(request: web.Request) -> web.Response:
        if delay > 0 and _poll_org(request) is not None:
            await asyncio.sleep(delay)
        await request.read()
        return web.Response(body=body, content_type=PAYLOAD_CONTENT_TYPE)

    app = web.Application(middlewares=[counting])
    app.router.add_route("*", "/api/organizations/{org_uuid}/usage", answer)
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


def bench_simulator_app(delay: float, orgs: int) -> web.Application:
    from monitor.simulator import Fault, Simulator, simulator_app

    sim = Simulator(max_requests=100)
    for index in range(orgs):
        sim.add_org(org_uuid(index), f"org-{index}", shape="seed")
        sim.add_account(token=poll_token(index), org_uuids=[org_uuid(index)])
    if delay > 0:
        sim.set_fault("*", Fault(delay=delay))
    app = simulator_app(sim)
    # Innermost, so an org counts as answered once the simulator's handler returned.
    app.middlewares.append(counting)
    return app


def build(args: argparse.Namespace) -> web.Application:
    app = bench_simulator_app(args.delay, args.orgs) if args.simulator else fast_app(args.delay)
    app[STATS_KEY] = Stats()
    app.router.add_get(STATS_PATH, stats_handler)
    app.router.add_post(RESET_PATH, reset_handler)
    return app


@dataclass
class Upstream:
    url: str
    port: int


async def start_upstream(procs: Processes, name: str, *, delay: float = 0.0) -> Upstream:
    """`python -m bench.upstream` (the fast app) as a child of `procs`, once it answers."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.upstream", "--port", str(port), "--delay", str(delay)]
    child = procs.start(name, argv)
    url = f"http://{HOST}:{port}"
    await wait_http(url + STATS_PATH, child, within=60)
    return Upstream(url, port)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.upstream")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each poll")
    parser.add_argument("--simulator", action="store_true", help="serve the simulator")
    parser.add_argument("--orgs", type=int, default=0, help="simulator orgs")
    args = parser.parse_args()
    web.run_app(build(args), host=HOST, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
