"""The running config: what a reload applies now and what waits for a restart."""

from __future__ import annotations

from monitor.config_source import RESTART_ONLY, ConfigSource, setting
from tests.support.config import make_config
from tests.support.upstream import ORG_A

URL = "http://127.0.0.1:9"


def test_a_reload_applies_everything_but_the_restart_only_settings() -> None:
    source = ConfigSource(make_config(URL), loaded_at=1.0)
    new = make_config(
        "http://127.0.0.1:8",
        [{"uuid": ORG_A, "token_env": "TOKEN_A"}],
        server={"port": 4999, "shutdown_grace_seconds": 3},
        upstream={"max_connections": 7, "timeout_seconds": 9},
        poll={"concurrency": 3},
    )
    waiting = source.replace(new, at=2.0)
    assert waiting == ["server.port", "server.shutdown_grace_seconds", "upstream.max_connections"]
    running = source.current
    assert running.server.port == 4000
    assert running.server.shutdown_grace_seconds == 10
    assert running.upstream.max_connections == 100
    # everything else is the new file's
    assert running.upstream.base_url == "http://127.0.0.1:8"
    assert running.upstream.timeout_seconds == 9
    assert running.poll.concurrency == 3
    assert [str(org.uuid) for org in running.orgs] == [ORG_A]
    assert (source.reload_successful, source.last_success) == (True, 2.0)


def test_an_unchanged_reload_waits_for_nothing() -> None:
    source = ConfigSource(make_config(URL), loaded_at=1.0)
    assert source.replace(make_config(URL), at=2.0) == []


def test_a_refused_reload_is_remembered_until_the_next_good_one() -> None:
    source = ConfigSource(make_config(URL), loaded_at=1.0)
    source.refused()
    assert (source.reload_successful, source.last_success) == (False, 1.0)
    source.replace(make_config(URL), at=5.0)
    assert (source.reload_successful, source.last_success) == (True, 5.0)


def test_every_restart_only_setting_names_a_real_key() -> None:
    config = make_config(URL)
    for path in RESTART_ONLY:
        assert setting(config, path) is not None  # AttributeError on a stale name
