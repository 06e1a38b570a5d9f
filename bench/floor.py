"""The Python floor: the least an aiohttp relay can do, to measure monitor's proxy against.

`python -m bench.floor --port P --upstream URL [--loop asyncio|uvloop]`

One ClientSession; each request is sent upstream with the caller's Authorization, the
whole answer is read, and returned with its status, body and content type. No checks, no
streaming, no metrics, no access log: what is left is aiohttp's own cost of two hops.
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
from aiohttp import web

from bench.procs import HOST


async def serve(port: int, upstream: str) -> None:
    async with aiohttp.ClientSession(upstream) as session:

        async def relay(request: web.Request) -> web.Response:
            headers = {"Authorization": request.headers.get("Authorization", "")}
            async with session.get(request.path_qs, headers=headers) as answer:
                body = await answer.read()
                return web.Response(
                    status=answer.status, body=body, content_type=answer.content_type
                )

        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", relay)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, HOST, port).start()
        await asyncio.Event().wait()  # until the process is signalled


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()
    if args.loop == "uvloop":
        # An optional dependency, imported only when asked for.
        import uvloop  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415

        uvloop.run(serve(args.port, args.upstream))
    else:
        asyncio.run(serve(args.port, args.upstream))


if __name__ == "__main__":
    main()
