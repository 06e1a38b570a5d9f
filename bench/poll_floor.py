"""The floor of a poll: the least an aiohttp client does to fetch every org's usage once.

`python -m bench.poll_floor --upstream URL --orgs N --concurrency C`

One ClientSession, C workers sharing the org list; each GET carries the org's token, the
whole answer is read and decoded as JSON. No parsing into windows, no store, no metrics,
no scheduling: what is left is aiohttp's own cost of a poll, to set monitor's CPU per poll
beside. It runs against the same delayed upstream as monitor, so its requests are as
spread out in time (and as costly per request) as the daemon's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

import aiohttp

from bench.upstream import RESET_PATH, org_uuid, poll_token


async def poll_all(upstream: str, orgs: int, concurrency: int) -> None:
    pending = list(range(orgs))
    timeout = aiohttp.ClientTimeout(total=15)
    connector = aiohttp.TCPConnector(limit=2 * concurrency)
    async with aiohttp.ClientSession(upstream, connector=connector) as session:
        # The upstream counts this process's polls and CPU, as it does the daemon's.
        reset = f"{RESET_PATH}?expect={orgs}&pid={os.getpid()}"
        async with session.post(reset) as answer:
            answer.raise_for_status()

        async def worker() -> None:
            while pending:
                index = pending.pop()
                url = f"/api/organizations/{org_uuid(index)}/usage"
                headers = {"Authorization": f"Bearer {poll_token(index)}"}
                async with session.get(
                    url, headers=headers, timeout=timeout, allow_redirects=False
                ) as answer:
                    json.loads(await answer.read())

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.poll_floor")
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--orgs", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(poll_all(args.upstream, args.orgs, args.concurrency))


if __name__ == "__main__":
    main()
