"""`monitor` as a real process, with and without the `otlp` extra.

Without the extra (OpenTelemetry made unimportable in the child), the daemon runs as
ever, and a config with `[otlp]` is refused naming the extra. With it, `monitor run`
pushes on its own schedule and once more when it stops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from tests.conftest import StartMonitor
from tests.support.net import free_port
from tests.support.otlp import METRICS_PATH, OtlpReceiver
from tests.support.process import assert_clean_exit
from tests.support.upstream import ORG_A, TOKEN_A, ServedInThread, ThreadedSimulator
from tests.support.waiting import until_sync

# Run `python -m monitor ARGS` with every `opentelemetry` module unimportable, as when
# the extra is not installed.
WITHOUT_EXTRA = """
import importlib.abc, runpy, sys

class NoOpenTelemetry(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoOpenTelemetry())
runpy.run_module("monitor", run_name="__main__", alter_sys=True)
"""
REFUSAL = "otlp: needs the otlp extra, which is not installed: pip install 'monitor[otlp]'"


def write_config(path: Path, upstream: str, port: int, otlp: str = "") -> Path:
    path.write_text(
        f'[server]\nport = {port}\n[upstream]\nbase_url = "{upstream}"\n'
        f'[[orgs]]\nuuid = "{ORG_A}"\nname = "acme"\ntoken_env = "TOKEN_A"\n{otlp}'
    )
    return path


WITHOUT_THE_EXTRA = ("-c", WITHOUT_EXTRA)


def test_without_the_extra_the_daemon_runs_as_ever(
    tmp_path: Path, start_monitor: StartMonitor
) -> None:
    port = free_port()
    with ThreadedSimulator() as served:
        config = write_config(tmp_path / "config.toml", served.url, port)
        daemon = start_monitor(
            ["run", "--config", str(config)], {"TOKEN_A": TOKEN_A}, WITHOUT_THE_EXTRA
        )
        try:
            body = daemon.wait_until(
                f"http://127.0.0.1:{port}/metrics",
                lambda status, text: status == 200 and 'claude_usage_up{org="acme"' in text,
            )
        finally:
            code, _, err = daemon.stop()
    assert "claude_monitor_otlp_exports" not in body
    assert_clean_exit(code, err)


def test_without_the_extra_an_otlp_section_is_refused(
    tmp_path: Path, start_monitor: StartMonitor
) -> None:
    otlp = '[otlp]\nendpoint = "http://127.0.0.1:4318/v1/metrics"\n'
    config = write_config(tmp_path / "config.toml", "http://127.0.0.1:9", free_port(), otlp)
    for command in ("check-config", "run"):
        child = start_monitor([command, "--config", str(config)], None, WITHOUT_THE_EXTRA)
        code, out, err = child.wait(timeout=60)
        assert code == 2, (command, out, err)
        assert f"  {REFUSAL}" in err.splitlines(), err


class ThreadedReceiver(ServedInThread):
    """An OTLP receiver on its own loop and thread, for a daemon in another process."""

    def __init__(self) -> None:
        super().__init__()
        self.receiver = OtlpReceiver()
        self.url = ""

    def __enter__(self) -> Self:
        super().__enter__()
        self.url = self.serve(self.receiver.app) + METRICS_PATH
        return self

    def count(self) -> int:
        return self.call(lambda: len(self.receiver.received))


def test_the_daemon_pushes_on_its_interval_and_once_more_at_stop(
    tmp_path: Path, start_monitor: StartMonitor
) -> None:
    port = free_port()
    with ThreadedSimulator() as served, ThreadedReceiver() as receiver:
        otlp = f'[otlp]\nendpoint = "{receiver.url}"\ninterval_seconds = 1\n'
        config = write_config(tmp_path / "config.toml", served.url, port, otlp)
        daemon = start_monitor(["run", "--config", str(config)], {"TOKEN_A": TOKEN_A})
        try:
            until_sync(lambda: receiver.count() >= 2, "two pushes on the interval")
        finally:
            pushed = receiver.count()
            code, _, err = daemon.stop()
        assert receiver.count() > pushed  # the last values, pushed at stop
    assert_clean_exit(code, err)
    assert f"otlp push to {receiver.url} every 1 s" in err
    assert "otlp push failed" not in err
