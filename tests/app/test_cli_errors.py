"""`monitor run` in-process, where it fails before serving: a bad port number, a port in
use, a refused config. Each is a clear message and an exit status, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli import EXIT_CONFIG, EXIT_FAILED, main
from tests.support.config import TEST_ENVIRON, write_config


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in TEST_ENVIRON.items():
        monkeypatch.setenv(name, value)
    return write_config(tmp_path / "config.toml", "http://127.0.0.1:9")


@pytest.mark.parametrize(
    ("port", "said"), [("x", "not a port number: 'x'"), ("70000", "out of range")]
)
def test_a_bad_port_is_refused_by_the_parser(
    config: Path, capsys: pytest.CaptureFixture[str], port: str, said: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--config", str(config), "--port", port])
    assert exit_.value.code == 2
    assert said in capsys.readouterr().err


def test_a_port_in_use_exits_1_naming_it(
    config: Path, busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(config), "--port", str(busy_port)]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert f"monitor: cannot listen on 127.0.0.1:{busy_port} (monitor)" in err
    assert "Traceback" not in err


def test_a_refused_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 0\n")
    assert main(["run", "--config", str(bad)]) == EXIT_CONFIG
    assert "server.port: " in capsys.readouterr().err
