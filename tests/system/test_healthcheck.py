"""`monitor healthcheck` against a real `monitor demo` process and against foreign servers.

The container health checks run it (Dockerfile, docker-compose.yml), so it must follow the
daemon's port wherever that was set, and must not pass when something else answers there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from argparse import Namespace
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from monitor.healthcheck import daemon_address, monitor_argv_start
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parent.parent


class Demo:
    """`monitor demo` as a process of its own, started from `cwd` with `args`."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "demo", "--simulator-port", "0", *args],
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_healthy(self, port: int) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"demo exited {self.proc.returncode}: {self.stop()}")
            try:
                url = f"http://127.0.0.1:{port}/healthz"
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"demo never answered on port {port}")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Demo, int, Path]]:
    """A demo on a free (non-default) port given as a relative `--config` file's
    `[server] port`, started in its own folder: (process, port, folder)."""
    folder = tmp_path_factory.mktemp("daemon")
    port = free_port()
    (folder / "monitor.toml").write_text(f"[server]\nport = {port}\n", encoding="utf-8")
    process = Demo(["--config", "monitor.toml"], folder)
    try:
        process.wait_healthy(port)
        yield process, port, folder
    finally:
        process.stop()


def healthcheck(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run `monitor healthcheck ARGS` in-process: (exit status, stderr)."""
    code = main(["healthcheck", *args])
    return code, capsys.readouterr().err


def write_config(path: Path, server: str) -> Path:
    path.write_text(f"[server]\n{server}\n", encoding="utf-8")
    return path


# -- monitor answering ---------------------------------------------------------------------


def test_healthy_on_the_port_given_by_flag(
    demo: tuple[Demo, int, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, port, _ = demo
    config = write_config(tmp_path / "c.toml", "port = 4000")
    assert healthcheck(capsys, "--config", str(config), "--port", str(port)) == (0, "")


def test_healthy_on_the_port_of_the_config_and_all_interfaces_mean_loopback(
    demo: tuple[Demo, int, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, port, _ = demo
    config = write_config(tmp_path / "c.toml", f'host = "0.0.0.0"\nport = {port}')
    assert healthcheck(capsys, "--config", str(config)) == (0, "")


def test_pid_follows_the_daemons_command_line_and_folder(
    demo: tuple[Demo, int, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo got `--config monitor.toml` relative to its own folder, not this one."""
    process, _, folder = demo
    assert Path.cwd() != folder
    assert healthcheck(capsys, "--pid", str(process.proc.pid)) == (0, "")


def test_pid_follows_a_port_flag(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The defect this command fixes: a daemon started with `--port` on a port no file
    names (the image's HEALTHCHECK probed 4000 whatever the daemon listened on)."""
    port = free_port()
    process = Demo(["--host", "127.0.0.1", "--port", str(port)], tmp_path)
    try:
        process.wait_healthy(port)
        assert healthcheck(capsys, "--pid", str(process.proc.pid)) == (0, "")
    finally:
        process.stop()
    code, err = healthcheck(capsys, "--port", str(port), "--config", str(_empty(tmp_path)))
    assert code == 1
    assert err == f"monitor healthcheck: nothing listens on 127.0.0.1:{port} (connection refused)\n"


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.toml"
    path.write_text("", encoding="utf-8")
    return path


# -- something else answering, or nothing --------------------------------------------------


class Foreign(BaseHTTPRequestHandler):
    """Another service on the port: answers /healthz with `status`, `body`."""

    status = 200
    body = b"OK"
    silent = False

    def do_GET(self) -> None:
        if self.silent:  # accept, read the request, never answer
            self.server.release.wait(10)  # type: ignore[attr-defined]
            return
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def foreign(request: pytest.FixtureRequest) -> Iterator[int]:
    handler = type("Handler", (Foreign,), request.param)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.release = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.release.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("foreign", "reason"),
    [
        ({"body": b"OK"}, "answered 200 but not monitor's"),
        ({"body": json.dumps({"status": "UP"}).encode()}, "answered 200 but not monitor's"),
        ({"body": json.dumps({"status": "ok"}).encode()}, "answered 200 but not monitor's"),
        ({"status": 503, "body": b"{}"}, "answered 503 Service Unavailable"),
        ({"status": 404, "body": b"{}"}, "answered 404 Not Found"),
        ({"silent": True}, "no answer from 127.0.0.1:{port} within 0.5 s"),
    ],
    indirect=["foreign"],
)
def test_unhealthy_when_another_service_answers(
    foreign: int, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "c.toml", f"port = {foreign}")
    code, err = healthcheck(capsys, "--config", str(config), "--timeout", "0.5")
    assert code == 1
    assert err.startswith("monitor healthcheck: ")
    assert reason.format(port=foreign) in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        ("port = 70000", "[server] port: input should be less than or equal to 65535"),
        ("port = ", "not valid TOML"),
    ],
)
def test_a_bad_config_is_one_line_and_status_1(
    server: str, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "c.toml", server)
    code, err = healthcheck(capsys, "--config", str(config))
    assert code == 1
    assert reason in err
    assert err.count("\n") == 1


def test_a_missing_config_is_one_line_and_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = healthcheck(capsys, "--config", str(tmp_path / "nope.toml"))
    assert (code, err) == (
        1,
        (
            f"monitor healthcheck: {tmp_path / 'nope.toml'}: cannot be read: "
            "No such file or directory\n"
        ),
    )


def test_pid_of_another_program_or_with_flags(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = healthcheck(capsys, "--pid", str(os.getpid()))
    assert code == 1
    assert f"process {os.getpid()} is not `monitor run` or `monitor demo`" in err
    code, err = healthcheck(capsys, "--pid", str(os.getpid()), "--port", "4000")
    assert (code, err) == (
        1,
        "monitor healthcheck: --pid reads --config, --host and --port from the daemon\n",
    )


# -- where the daemon's arguments start, and which address is probed -----------------------


@pytest.mark.parametrize(
    ("argv", "start"),
    [
        (["/usr/local/bin/python3.12", "/usr/local/bin/monitor", "run", "--port", "1"], 2),
        (["python", "-m", "monitor", "demo", ""], 3),
        (["/sbin/docker-init", "--", "monitor", "run", "--host", "0.0.0.0", ""], 3),
        (["/opt/venv/bin/python3", "/opt/venv/bin/monitor", "usage", ""], None),
        (["/usr/bin/monitor", ""], None),
        (["nginx", "run", ""], None),
    ],
)
def test_where_the_daemons_arguments_start(argv: list[str], start: int | None) -> None:
    assert monitor_argv_start(argv) == start


@pytest.mark.parametrize(
    ("host", "probed"),
    [("0.0.0.0", "127.0.0.1"), ("::", "::1"), ("127.0.0.2", "127.0.0.2"), ("::1", "::1")],
)
def test_all_interfaces_are_probed_on_loopback(host: str, probed: str) -> None:
    args = Namespace(command="demo", config=None, host=host, port=4999)
    assert daemon_address(args, Path.cwd()) == (probed, 4999)
