"""`monitor run | check-config | usage | demo | healthcheck`; `python -m monitor` is the same
program."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from monitor import __version__, event_loop
from monitor.app import Reloads, create_app, wire
from monitor.arguments import build_parser
from monitor.config import ConfigError, apply_overrides, config_path, load_config
from monitor.daemon import Listener, ListenError, serve
from monitor.demo import run_demo
from monitor.healthcheck import healthcheck
from monitor.heap import freeze_long_lived
from monitor.logs import configure_logging
from monitor.report import print_config, usage_report, usage_table
from monitor.schema import Config
from monitor.state import OrgState

log = logging.getLogger("monitor")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_format, args.log_level)
    try:
        if args.command == "check-config":
            return check_config(args)
        if args.command == "usage":
            return asyncio.run(poll_once(args))
        if args.command == "healthcheck":
            return healthcheck(args)
        if args.command == "demo":
            return event_loop.run(run_demo(args), "auto")
        warnings: list[str] = []
        config = listen_overrides(read_config(args, warnings), args)
        return event_loop.run(run_daemon(args, config, warnings), config.server.event_loop)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_CONFIG
    except ListenError as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return EXIT_FAILED


def read_config(args: argparse.Namespace, warnings: list[str] | None = None) -> Config:
    path: Path = config_path(args.config)
    return load_config(path, warnings=warnings)


def listen_overrides(config: Config, args: argparse.Namespace) -> Config:
    return apply_overrides(
        config, host=args.host, port=args.port, shard=getattr(args, "shard", None)
    )


def check_config(args: argparse.Namespace) -> int:
    warnings: list[str] = []
    config = read_config(args, warnings)
    print_config(config, str(config_path(args.config)), warnings, sys.stdout)
    return EXIT_OK


async def poll_once(args: argparse.Namespace) -> int:
    config = read_config(args)
    states = await poll_every_org_once(config)
    if args.json:
        print(json.dumps(usage_report(states), indent=2))
    else:
        print(usage_table(states))
    failed = [s for s in states if not s.up]
    return EXIT_FAILED if failed or not states else EXIT_OK


async def poll_every_org_once(config: Config) -> list[OrgState]:
    """Discover, then poll every org once, with nothing scheduled: `monitor usage`."""
    parts = wire(config)
    await parts.upstream.open()
    try:
        parts.poller.apply_targets()
        await parts.discovery.discover_all()
        await parts.poller.poll_all()
    finally:
        await parts.upstream.close()
    return list(parts.store)


async def run_daemon(args: argparse.Namespace, config: Config, warnings: list[str]) -> int:
    for warning in warnings:
        log.warning("%s", warning)
    app = create_app(config, freeze_heap=freeze_long_lived)
    server = config.server
    listener = Listener(app, server.host, server.port, "monitor")

    def started(urls: dict[str, str]) -> None:
        base = urls["monitor"]
        log.info(
            "monitor %s listening on %s (metrics %s/metrics, proxy %s/api/...), %d org(s), %s",
            __version__,
            base,
            base,
            base,
            len(config.orgs),
            event_loop.loop_name(server.event_loop),
        )

    def load() -> Config:
        warnings: list[str] = []
        config = listen_overrides(read_config(args, warnings), args)
        for warning in warnings:
            log.warning("%s", warning)
        return config

    await serve(
        [listener],
        grace_seconds=server.shutdown_grace_seconds,
        on_started=started,
        on_reload=Reloads(app, load).request,
    )
    return EXIT_OK
