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

from monitor import __version__
from monitor.app import create_app, reload_config
from monitor.config import Config, ConfigError, apply_overrides, config_path, load_config
from monitor.daemon import Listener, ListenError, serve
from monitor.healthcheck import healthcheck
from monitor.logs import configure_logging
from monitor.report import print_config, usage_report, usage_table

log = logging.getLogger("monitor")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $MONITOR_CONFIG, else ./config.toml)",
    )
    common.add_argument("--log-format", choices=["text", "json"], default="text")
    common.add_argument("--log-level", default="INFO", type=str.upper)
    listen = argparse.ArgumentParser(add_help=False)
    listen.add_argument("--host", help="address to listen on (overrides [server].host)")
    listen.add_argument("--port", type=_port, help="port to listen on (overrides [server].port)")

    parser = argparse.ArgumentParser(
        prog="monitor",
        description="Claude organization usage as Prometheus metrics, and a local proxy.",
    )
    parser.add_argument("--version", action="version", version=f"monitor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run", parents=[common, listen], help="run the daemon (exporter and proxy)"
    )
    run.add_argument("--shard", metavar="I/N", help="poll only shard I of N (overrides [poll])")
    commands.add_parser(
        "check-config",
        parents=[common],
        help="validate the config and print the resolved orgs, secrets masked",
    )
    usage = commands.add_parser("usage", parents=[common], help="poll every org once and print")
    usage.add_argument("--json", action="store_true", help="print JSON instead of a table")
    demo = commands.add_parser(
        "demo", parents=[common, listen], help="run the daemon against a built-in simulator"
    )
    demo.add_argument(
        "--simulator-port",
        type=_port,
        default=4001,
        help="port of the simulated upstream (default 4001; 0 picks a free one)",
    )
    health = commands.add_parser(
        "healthcheck",
        parents=[common, listen],
        help="exit 0 if the daemon answers /healthz as monitor, else 1 (for health checks)",
    )
    health.add_argument(
        "--pid",
        type=int,
        help="read --config, --host and --port from the command line of this daemon process",
    )
    health.add_argument(
        "--timeout", type=float, default=3.0, help="seconds to wait for an answer (default 3)"
    )
    return parser


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is out of range 0-65535")
    return value


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
            from monitor.demo import run_demo  # the simulator is only loaded for the demo

            return asyncio.run(run_demo(args))
        return asyncio.run(run_daemon(args))
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
    from monitor.poller import Poller
    from monitor.state import UsageStore
    from monitor.upstream import UpstreamClient

    config = read_config(args)
    store = UsageStore()
    upstream = UpstreamClient(config.upstream)
    await upstream.open()
    try:
        poller = Poller(config, store, upstream)
        await poller.discover_all()
        poller.apply_targets()
        await poller.poll_all()
    finally:
        await upstream.close()
    states = list(store)
    if args.json:
        print(json.dumps(usage_report(states), indent=2))
    else:
        print(usage_table(states))
    failed = [s for s in states if not s.up]
    return EXIT_FAILED if failed or not states else EXIT_OK


async def run_daemon(args: argparse.Namespace) -> int:
    warnings: list[str] = []
    config = listen_overrides(read_config(args, warnings), args)
    for warning in warnings:
        log.warning("%s", warning)
    app = create_app(config)
    server = config.server
    listener = Listener(app, server.host, server.port, "monitor")

    def started(urls: dict[str, str]) -> None:
        base = urls["monitor"]
        log.info(
            "monitor %s listening on %s (metrics %s/metrics, proxy %s/api/...), %d org(s)",
            __version__,
            base,
            base,
            base,
            len(config.orgs),
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
        on_reload=lambda: reload_config(app, load),
    )
    return EXIT_OK
