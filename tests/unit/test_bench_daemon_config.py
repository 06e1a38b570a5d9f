"""The config the benchmark writes for its monitor daemons is one monitor accepts, and
carries `[server] event_loop` only when the bench asks for a loop (so it runs against a
monitor without that setting when uvloop is not installed)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from bench.daemon import DaemonSpec, write_config
from bench.upstream import org_uuid
from monitor.config import load_config


def test_the_config_is_valid_and_names_no_loop_by_default(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    env = write_config(DaemonSpec(orgs=3, upstream_url="http://127.0.0.1:9"), 4100, path)
    assert "event_loop" not in tomllib.loads(path.read_text())["server"]
    config = load_config(path, environ=env)
    assert [str(org.uuid) for org in config.orgs] == [org_uuid(i) for i in range(3)]
    assert config.server.port == 4100
    # twice the poll concurrency, as monitor advises
    assert config.upstream.max_connections == 200
    # one token per org, each in its own variable
    assert len(set(env.values())) == 3


def test_a_loop_asked_for_is_written(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    spec = DaemonSpec(orgs=1, upstream_url="http://127.0.0.1:9", event_loop="uvloop")
    write_config(spec, 4100, path)
    assert tomllib.loads(path.read_text())["server"]["event_loop"] == "uvloop"


def test_30000_tokens_fit_in_the_environment_of_one_process(tmp_path: Path) -> None:
    env = write_config(
        DaemonSpec(orgs=30_000, upstream_url="http://127.0.0.1:9"), 1, tmp_path / "c.toml"
    )
    # execve's limit is about 2 MB for arguments and environment together
    assert sum(len(k) + len(v) + 2 + 8 for k, v in env.items()) < 1_000_000
