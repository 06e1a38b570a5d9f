"""`[server] event_loop`: which loop the daemon runs on."""

from __future__ import annotations

import asyncio

import pytest

from monitor import event_loop
from monitor.config import ConfigError
from tests.support.config import make_config

URL = "http://127.0.0.1:9"


async def loop_class() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_is_uvloop_when_installed_and_asyncio_is_asyncio() -> None:
    pytest.importorskip("uvloop", reason="the uvloop extra is part of the test extra")
    assert event_loop.loop_name("auto") == "uvloop"
    assert event_loop.run(loop_class(), "auto").startswith("uvloop")
    assert event_loop.run(loop_class(), "uvloop").startswith("uvloop")
    assert event_loop.run(loop_class(), "asyncio").startswith("asyncio")


def test_auto_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_loop, "uvloop_installed", lambda: False)
    assert event_loop.loop_name("auto") == "asyncio"
    assert event_loop.run(loop_class(), "auto").startswith("asyncio")


def test_choosing_uvloop_without_it_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("monitor.schema.uvloop_installed", lambda: False)
    with pytest.raises(ConfigError) as refused:
        make_config(URL, server={"event_loop": "uvloop"})
    assert "server.event_loop: uvloop is not installed: pip install 'monitor[uvloop]'" in str(
        refused.value
    )
    assert make_config(URL, server={"event_loop": "auto"}).server.event_loop == "auto"
