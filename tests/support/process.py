"""`monitor` as a real process: start it, wait for it, stop it with a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.support.net import get
from tests.support.waiting import until_sync

ROOT = Path(__file__).resolve().parent.parent.parent
Check = Callable[[int, str], bool]


class MonitorProcess:
    """`python -m monitor ARGS` with stdout and stderr captured."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
        )

    def wait_until(self, url: str, check: Check = lambda _s, _b: True, timeout: float = 30) -> str:
        """GET `url` until it answers and `check(status, body)` agrees; the body."""

        def answered() -> str | None:
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise AssertionError(f"exited {self.proc.returncode}: {out}\n{err}")
            try:
                status, body = get(url)
            except OSError:
                return None
            return body if check(status, body) else None

        return until_sync(answered, f"{url} to answer as expected", timeout=timeout)

    def stop(
        self, sig: signal.Signals = signal.SIGTERM, timeout: float = 20
    ) -> tuple[int, str, str]:
        """Send `sig` and wait for the exit: (status, stdout, stderr)."""
        self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"did not stop on {sig.name}:\n{err}") from None
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def assert_clean_exit(code: int, err: str) -> None:
    """Exit 0 with nothing left open and no traceback in the log."""
    assert code == 0, err
    for sign in (
        "Unclosed client session",
        "Unclosed connector",
        "Traceback",
        "raised an exception",
        "Task was destroyed",
    ):
        assert sign not in err, err
