"""The command line's grammar: every command and flag of `monitor`, and nothing it does.

Shared by `monitor.cli`, which runs the commands, and `monitor.healthcheck`, which reads a
running daemon's command line the way the daemon itself did.
"""

from __future__ import annotations

import argparse

from monitor import __version__


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
