"""`monitor demo`: the daemon and the simulator in one process, no credentials needed."""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from monitor import __version__
from monitor.app import create_app
from monitor.config import apply_overrides, config_path, load_config, parse_config
from monitor.daemon import Listener, ListenError, listening_url, serve
from monitor.schema import Config
from monitor.simulator import (
    DemoCredentials,
    Simulator,
    demo_simulator,
    renew_forever,
    renew_once,
    simulator_app,
)

log = logging.getLogger("monitor.demo")

DEMO_POLL = {"interval_seconds": 5, "max_interval_seconds": 30, "concurrency": 4}
# The renewed org's token lives this long and is replaced this often (as Claude Code
# renews its OAuth token before it lapses), so the file always holds a working one.
TOKEN_LIFETIME_SECONDS = 90.0
RENEW_EVERY_SECONDS = 60.0
CLAUDE_CODE_TOKEN_KEY = "claudeAiOauth.accessToken"  # noqa: S105 - a key path, not a secret


def demo_config(
    credentials: DemoCredentials,
    simulator_url: str,
    credentials_file: Path,
    base: Config | None = None,
) -> Config:
    """The daemon's config for the demo: every simulated org, polled fast; the renewed
    org reads its token from `credentials_file` as from Claude Code's.

    `[server]`, `[upstream]` timeouts, `[poll]` and `[proxy]` come from the user's file
    when one was given; the orgs and the upstream addresses are always the simulator's.
    """
    environ = {f"DEMO_TOKEN_{org.name.upper()}": org.token for org in credentials.orgs}
    environ["DEMO_ACCOUNT_TOKEN"] = credentials.account_token
    document: dict[str, Any] = {
        "server": base.server.model_dump() if base else {},
        "upstream": {**(base.upstream.model_dump() if base else {}), "base_url": simulator_url},
        "poll": base.poll.model_dump() if base else DEMO_POLL,
        "proxy": {**(base.proxy.model_dump() if base else {}), "oauth_base_url": simulator_url},
        "orgs": [
            *(
                {"uuid": org.uuid, "name": org.name, "token_env": f"DEMO_TOKEN_{org.name.upper()}"}
                for org in credentials.orgs
            ),
            {
                "uuid": credentials.renewed.uuid,
                "name": credentials.renewed.name,
                "token_file": str(credentials_file),
                "token_json_key": CLAUDE_CODE_TOKEN_KEY,
            },
        ],
        "accounts": [{"name": "demo-account", "token_env": "DEMO_ACCOUNT_TOKEN"}],
    }
    return parse_config(document, environ=environ, source="demo")


async def run_demo(args: argparse.Namespace) -> int:
    base = load_config(config_path(args.config)) if args.config else None
    simulator, credentials = demo_simulator()
    with tempfile.TemporaryDirectory(prefix="monitor-demo-") as folder:
        credentials_file = Path(folder) / ".credentials.json"
        account = credentials.renewed.account_uuid
        renew_once(simulator, account, credentials_file, TOKEN_LIFETIME_SECONDS)
        renewer = asyncio.create_task(
            renew_forever(
                simulator,
                account,
                credentials_file,
                every=RENEW_EVERY_SECONDS,
                lifetime=TOKEN_LIFETIME_SECONDS,
            )
        )
        try:
            return await _serve_demo(args, base, simulator, credentials, credentials_file)
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)


async def _serve_demo(
    args: argparse.Namespace,
    base: Config | None,
    simulator: Simulator,
    credentials: DemoCredentials,
    credentials_file: Path,
) -> int:
    # The simulator listens first: its address goes into the daemon's config.
    sim_host = "127.0.0.1" if args.host in (None, "localhost") else args.host
    # access_log=None: the daemon already logs its side of every call.
    sim_runner = web.AppRunner(simulator_app(simulator), shutdown_timeout=1.0, access_log=None)
    await sim_runner.setup()
    try:
        try:
            await web.TCPSite(sim_runner, sim_host, args.simulator_port).start()
        except OSError as exc:
            where = f"{sim_host}:{args.simulator_port}"
            message = f"cannot listen on {where} (simulator): {exc.strerror}; try --simulator-port"
            raise ListenError(message) from None
        sim_url = listening_url(sim_runner, sim_host, args.simulator_port)
        internal_url = sim_url.replace("0.0.0.0", "127.0.0.1")  # noqa: S104 - a URL to dial
        config = apply_overrides(
            demo_config(credentials, internal_url, credentials_file, base),
            host=args.host,
            port=args.port,
        )
        app = create_app(config)
        listener = Listener(app, config.server.host, config.server.port, "monitor")

        def started(urls: dict[str, str]) -> None:
            print(_banner(urls["monitor"], sim_url, credentials, credentials_file), flush=True)

        await serve(
            [listener], grace_seconds=config.server.shutdown_grace_seconds, on_started=started
        )
    finally:
        await sim_runner.cleanup()
    return 0


def _banner(url: str, sim_url: str, credentials: DemoCredentials, credentials_file: Path) -> str:
    acme = credentials.orgs[0]
    oauth = f"curl -H 'Authorization: Bearer {credentials.token_for('globex')}' "
    return "\n".join(
        [
            (
                f"monitor {__version__} demo: {len(credentials.orgs) + 1} simulated orgs "
                "(one with an expired token, one rate-limited) and one account to discover"
            ),
            (
                f"  renewed     {credentials.renewed.name}'s token lives "
                f"{TOKEN_LIFETIME_SECONDS:g} s in {credentials_file}, renewed every "
                f"{RENEW_EVERY_SECONDS:g} s"
            ),
            f"  status      {url}/?refresh=on",
            f"  metrics     {url}/metrics",
            f"  health      {url}/healthz  {url}/readyz",
            (
                f"  proxy       curl -H 'Authorization: Bearer {acme.token}' "
                f"{url}/api/organizations/{acme.uuid}/usage"
            ),
            f"  oauth       {oauth}{url}/api/oauth/usage",
            f"              {oauth}{url}/api/oauth/profile",
            f"  simulator   {sim_url}  (state: {sim_url}/_simulator/state)",
            "Ctrl-C to stop.",
        ]
    )
