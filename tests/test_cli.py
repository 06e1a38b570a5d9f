"""The command line: `monitor usage` in-process, `monitor demo` and `monitor run` as processes."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.cli import main
from monitor.simulator import Fault, Simulator, simulator_app
from monitor.simulator.demo import ACME, GLOBEX
from tests.support.upstream import ORG_A, ORG_B, ORG_C, TOKEN_A, TOKEN_B, TOKEN_C

ROOT = Path(__file__).resolve().parent.parent


class FrozenClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ThreadedSimulator:
    """A simulator served from its own thread and loop, so `main()` can run `asyncio.run`."""

    def __init__(self) -> None:
        self.sim = Simulator(FrozenClock(time.time()))
        self.sim.add_org(ORG_A, "acme", plan="team", shape="seed")
        self.sim.add_org(ORG_B, "beta", plan="enterprise", shape="limits_2026")
        self.sim.add_org(ORG_C, "gamma", plan="max", shape="oauth_2025")
        self.sim.add_account(token=TOKEN_A, org_uuids=[ORG_A, ORG_C])
        self.sim.add_account(token=TOKEN_B, org_uuids=[ORG_B])
        self.sim.add_account(token=TOKEN_C, org_uuids=[ORG_C])
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ThreadedSimulator:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(simulator_app(self.sim))
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop)
            future.result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def served() -> Iterator[ThreadedSimulator]:
    with ThreadedSimulator() as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def _keep_logging() -> Iterator[None]:
    """main() points the root logger at this test's stderr; put it back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def write_usage_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[upstream]
base_url = "{url}"
timeout_seconds = 5

[[orgs]]
uuid = "{ORG_A}"
name = "acme"
token_env = "CLI_TOKEN_A"

[[orgs]]
uuid = "{ORG_B}"
name = "beta"
token_env = "CLI_TOKEN_B"
"""
    )
    return path


@pytest.fixture
def usage_config(
    tmp_path: Path, served: ThreadedSimulator, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("CLI_TOKEN_A", TOKEN_A)
    monkeypatch.setenv("CLI_TOKEN_B", TOKEN_B)
    return write_usage_config(tmp_path, served.url)


# -- monitor usage -----------------------------------------------------------------------


def table_rows(out: str) -> list[list[str]]:
    lines = out.strip().splitlines()
    header = lines[0]
    starts = [header.index(col) for col in ("ORG", "WINDOW", "USED", "RESETS IN", "EXTRA")]
    rows = []
    for line in lines[1:]:
        if not line.strip():
            break
        bounds = [*starts[1:], len(line) + 1]
        rows.append([line[a:b].strip() for a, b in zip(starts, bounds, strict=True)])
    return rows


def test_usage_prints_a_table(
    served: ThreadedSimulator, usage_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["usage", "--config", str(usage_config)]) == 0
    out, _ = capsys.readouterr()
    assert out.splitlines()[0].split() == [
        "ORG",
        "WINDOW",
        "USED",
        "RESETS",
        "IN",
        "PACE",
        "PROJECTION",
        "EXTRA",
        "CREDITS",
    ]
    rows = table_rows(out)
    by_window = {(row[0], row[1]): row for row in rows}

    payload_a = served.sim.usage(ORG_A)
    code = payload_a["claude_code"]
    assert isinstance(code, dict)
    row = by_window[("acme", "claude_code")]
    assert row[2] == f"{code['utilization']:.1f}%"
    assert row[3] not in ("-", "now")  # a duration such as "4h 59m"
    extra = payload_a["extra_usage"]
    assert isinstance(extra, dict)
    used = f"{extra['used_credits'] / 100:.2f}"
    limit = f"{extra['monthly_limit'] / 100:.2f}"
    assert row[4] == f"{used} / {limit}"

    payload_b = served.sim.usage(ORG_B)
    beta_windows = [
        key
        for key, value in payload_b.items()
        if isinstance(value, dict) and value.get("utilization") is not None
    ]
    assert {w for org, w in by_window if org == "beta"} >= set(beta_windows)
    beta_first = next(row for row in rows if row[0] == "beta")
    assert beta_first[4].endswith(" USD")
    assert TOKEN_A not in out
    assert TOKEN_B not in out


def test_usage_json_matches_the_upstream(
    served: ThreadedSimulator, usage_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["usage", "--config", str(usage_config), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    orgs = {org["org_uuid"]: org for org in report["orgs"]}
    assert set(orgs) == {ORG_A, ORG_B}
    for org_uuid in (ORG_A, ORG_B):
        entry = orgs[org_uuid]
        assert entry["result"] == "success"
        assert entry["error"] is None
        payload = served.sim.usage(org_uuid)
        for key, value in payload.items():
            if not isinstance(value, dict) or "utilization" not in value:
                continue
            window = entry["windows"][key]
            if value["utilization"] is None:
                assert window["utilization_percent"] is None
            else:
                assert window["utilization_percent"] == pytest.approx(value["utilization"])
            if value.get("resets_at") is None:
                assert window["resets_at"] is None
            else:
                assert datetime.fromisoformat(window["resets_at"]) == datetime.fromisoformat(
                    value["resets_at"]
                )
        extra = payload["extra_usage"]
        assert isinstance(extra, dict)
        assert entry["extra_usage"]["used_credits"] == extra["used_credits"]
        assert entry["extra_usage"]["is_enabled"] == extra["is_enabled"]


def test_usage_exits_1_and_says_why_when_an_org_fails(
    served: ThreadedSimulator, usage_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    served.sim.set_fault(ORG_B, Fault(status=401))
    assert main(["usage", "--config", str(usage_config)]) == 1
    out, _ = capsys.readouterr()
    assert "failed:" in out
    failed = out.split("failed:", 1)[1]
    assert "beta: unauthorized: HTTP 401" in failed
    assert "acme" not in failed
    assert any(row[0] == "acme" for row in table_rows(out))

    assert main(["usage", "--config", str(usage_config), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    beta = next(org for org in report["orgs"] if org["org"] == "beta")
    assert beta["result"] == "unauthorized"
    assert "401" in beta["error"]


def test_usage_discovers_accounts(
    tmp_path: Path,
    served: ThreadedSimulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CLI_TOKEN_A", TOKEN_A)
    path = tmp_path / "config.toml"
    path.write_text(
        f'[upstream]\nbase_url = "{served.url}"\n\n[[accounts]]\ntoken_env = "CLI_TOKEN_A"\n'
    )
    assert main(["usage", "--config", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(org["org_uuid"] for org in report["orgs"]) == sorted([ORG_A, ORG_C])
    assert len(served.sim.requests_for(ORG_A)) == 1


def test_usage_with_a_bad_config_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLI_TOKEN_A", raising=False)
    path = write_usage_config(tmp_path, "http://127.0.0.1:9")
    assert main(["usage", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "orgs[0].token_env: environment variable CLI_TOKEN_A is not set" in err
    assert "Traceback" not in err


# -- monitor demo and monitor run as processes -------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - a local URL
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class Process:
    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
        )

    def wait_until(self, url: str, check: Any = lambda _status, _body: True) -> str:
        """GET `url` until it answers and `check` agrees; at most ~30 s."""
        for _ in range(300):
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise AssertionError(f"exited {self.proc.returncode}: {out}\n{err}")
            try:
                status, body = get(url)
            except OSError:
                time.sleep(0.1)
                continue
            if check(status, body):
                return body
            time.sleep(0.1)
        raise AssertionError(f"{url} never answered as expected")

    def stop(self) -> tuple[int, str, str]:
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"did not stop on SIGTERM:\n{err}") from None
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def assert_clean_exit(code: int, err: str) -> None:
    assert code == 0, err
    assert "Unclosed client session" not in err
    assert "Unclosed connector" not in err
    assert "Traceback" not in err
    assert "raised an exception" not in err
    assert "Task was destroyed" not in err


def up_for(org: str) -> Any:
    return lambda status, body: status == 200 and f'claude_usage_up{{org="{org}"' in body


def test_demo_serves_metrics_and_stops_on_sigterm(tmp_path: Path) -> None:
    port, sim_port = free_port(), free_port()
    demo = Process(["demo", "--port", str(port), "--simulator-port", str(sim_port)])
    try:
        base = f"http://127.0.0.1:{port}"
        health = demo.wait_until(f"{base}/healthz", lambda status, _body: status == 200)
        assert json.loads(health)["status"] == "ok"
        metrics = demo.wait_until(f"{base}/metrics", up_for("acme"))
        assert "claude_usage_utilization_ratio{" in metrics
        assert 'claude_monitor_build_info{version="' in metrics
        status, _ = get(f"http://127.0.0.1:{sim_port}/_simulator/state")
        assert status == 200

        # a second daemon, `monitor run`, against the demo's simulator
        run_port = free_port()
        config = tmp_path / "run.toml"
        config.write_text(
            f"""
[upstream]
base_url = "http://127.0.0.1:{sim_port}"

[poll]
interval_seconds = 1
max_interval_seconds = 2

[[orgs]]
uuid = "{ACME.uuid}"
name = "acme"
token_env = "RUN_TOKEN_ACME"

[[orgs]]
uuid = "{GLOBEX.uuid}"
name = "globex"
token_env = "RUN_TOKEN_GLOBEX"
"""
        )
        run = Process(
            ["run", "--config", str(config), "--port", str(run_port), "--log-format", "json"],
            env={"RUN_TOKEN_ACME": ACME.token, "RUN_TOKEN_GLOBEX": GLOBEX.token},
        )
        try:
            run_base = f"http://127.0.0.1:{run_port}"
            run.wait_until(f"{run_base}/readyz", lambda status, _body: status == 200)
            metrics = run.wait_until(f"{run_base}/metrics", up_for("globex"))
            assert 'claude_usage_up{org="acme",org_uuid="' + ACME.uuid + '"} 1.0' in metrics
            code, _, err = run.stop()
        finally:
            run.kill()
        assert_clean_exit(code, err)
        entries = [json.loads(line) for line in err.splitlines()]  # --log-format json
        assert all({"time", "level", "logger", "message"} <= set(entry) for entry in entries)
        messages = [entry["message"] for entry in entries]
        assert any("listening on" in message for message in messages), messages
        assert messages[-1] == "stopping"
        assert ACME.token not in err
        assert GLOBEX.token not in err

        code, out, err = demo.stop()
    finally:
        demo.kill()
    assert_clean_exit(code, err)
    assert f"{base}/metrics" in out
