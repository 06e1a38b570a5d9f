"""`monitor healthcheck`: is the daemon up, and is it monitor that answers?

Exit 0 when `GET /healthz` on the daemon's address answers 200 with monitor's own
`{"status": "ok", "service": "claude-monitor"}`; otherwise exit 1 with one line on stderr
saying why. Never 2: Docker reserves that status, and a health check has only two answers.

The address comes from where `monitor run` takes it: `[server]` of the config file
(`--config`, else `$MONITOR_CONFIG`, else `./config.toml`; `monitor demo` reads a file
only when given `--config`), then `--host` and `--port`. With `--pid N` those three flags
are read from the command line of the running daemon, process N, instead: that is how the
image's HEALTHCHECK follows a `--port` given to `docker run` (the daemon is PID 1 there).
A daemon listening on every interface (`0.0.0.0`, `::`) is probed on loopback.

Only `[server]` is read from the file: the check needs no secret, so it works from a shell
that lacks the daemon's credentials.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tomllib
from pathlib import Path

from pydantic import ValidationError

from monitor.arguments import build_parser
from monitor.config import config_path, format_errors
from monitor.health import HEALTHY
from monitor.schema import ServerConfig

MAX_BODY = 64 * 1024
DAEMON_COMMANDS = ("run", "demo")
# A daemon bound to every interface answers on loopback.
LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104


class UnhealthyError(Exception):
    """Why the daemon is not healthy (or cannot be found), as one line."""


def healthcheck(args: argparse.Namespace) -> int:
    """`monitor healthcheck`: 0 if healthy, else 1 with the reason on stderr."""
    try:
        daemon, cwd = args, Path.cwd()
        if args.pid is not None:
            daemon, cwd = daemon_arguments(args.pid, args)
        host, port = daemon_address(daemon, cwd)
        probe(host, port, args.timeout)
    except UnhealthyError as exc:
        print(f"monitor healthcheck: {exc}", file=sys.stderr)
        return 1
    return 0


def daemon_arguments(pid: int, args: argparse.Namespace) -> tuple[argparse.Namespace, Path]:
    """The parsed command line of daemon process `pid`, and its working directory."""
    if args.config or args.host or args.port is not None:
        raise UnhealthyError("--pid reads --config, --host and --port from the daemon")
    proc = Path("/proc") / str(pid)
    try:
        argv = (proc / "cmdline").read_bytes().decode().split("\0")
        cwd = (proc / "cwd").readlink()
    except OSError as exc:
        raise UnhealthyError(f"cannot read process {pid}: {exc.strerror or exc}") from None
    start = monitor_argv_start(argv)
    if start is None:
        shown = " ".join(argv).strip()[:120]
        raise UnhealthyError(f"process {pid} is not `monitor run` or `monitor demo`: {shown!r}")
    try:
        parsed, _ = build_parser().parse_known_args(argv[start:])
    except SystemExit:  # argparse already printed why
        raise UnhealthyError(f"cannot parse the command line of process {pid}") from None
    return parsed, cwd


def monitor_argv_start(argv: list[str]) -> int | None:
    """Where `run ...` or `demo ...` starts in a process's argv: after `.../monitor`,
    `python -m monitor` or `docker-init -- monitor`."""
    for i, word in enumerate(argv[:-1]):
        if Path(word).name == "monitor" and argv[i + 1] in DAEMON_COMMANDS:
            return i + 1
    return None


def daemon_address(args: argparse.Namespace, cwd: Path) -> tuple[str, int]:
    """(host, port) to probe, resolved like the daemon resolves where it listens."""
    if args.command == "demo" and not args.config:
        server = ServerConfig()
    else:
        path = config_path(args.config)
        server = server_section(path if path.is_absolute() else cwd / path)
    host = args.host if args.host is not None else server.host
    port = args.port if args.port is not None else server.port
    return LOOPBACK.get(host, host), port


def server_section(path: Path) -> ServerConfig:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UnhealthyError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UnhealthyError(f"{path}: not valid TOML: {exc}") from None
    try:
        return ServerConfig.model_validate(document.get("server", {}))
    except ValidationError as exc:
        raise UnhealthyError(f"{path}: [server] " + "; ".join(format_errors(exc))) from None


def probe(host: str, port: int, timeout: float) -> None:
    """Raise UnhealthyError unless monitor answers `GET /healthz` on host:port as healthy.

    http.client rather than urllib: urllib would honour $http_proxy and ask a proxy.
    """
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/healthz", headers={"Accept": "application/json"})
        response = connection.getresponse()
        body = response.read(MAX_BODY)
    except ConnectionRefusedError:
        raise UnhealthyError(f"nothing listens on {where} (connection refused)") from None
    except TimeoutError:
        raise UnhealthyError(f"no answer from {where} within {timeout:g} s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise UnhealthyError(f"cannot get http://{where}/healthz: {exc!r}") from None
    finally:
        connection.close()
    if response.status != 200:
        raise UnhealthyError(f"http://{where}/healthz answered {response.status} {response.reason}")
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if document != HEALTHY:
        raise UnhealthyError(
            f"http://{where}/healthz answered 200 but not monitor's {json.dumps(HEALTHY)}: "
            "is another service on this port?"
        )
