"""The commented `[proxy]` section of the example `config.toml` is valid once uncommented,
and every value it shows is the default it claims to be."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from monitor.config import ConfigError, parse_config
from monitor.schema import ProxyConfig

EXAMPLE = Path(__file__).resolve().parent.parent.parent / "config.toml"


def commented_proxy_section() -> str:
    text = EXAMPLE.read_text(encoding="utf-8")
    (block,) = re.findall(r"^# \[proxy\]\n(?:^# .*\n)+", text, flags=re.MULTILINE)
    return "\n".join(line[2:] for line in block.splitlines())


def test_the_commented_proxy_section_shows_the_defaults() -> None:
    document = tomllib.loads(commented_proxy_section())
    assert set(document["proxy"]) == set(ProxyConfig.model_fields)
    config = parse_config(document, environ={})
    assert config.proxy == ProxyConfig()


def test_a_bad_proxy_setting_is_refused_by_its_key_path() -> None:
    document = {"proxy": {"oauth_base_url": "api.anthropic.com", "usage_cache_seconds": -1}}
    with pytest.raises(ConfigError) as refused:
        parse_config(document, environ={})
    problems = "\n".join(refused.value.problems)
    assert "proxy.oauth_base_url: must be an absolute http:// or https:// URL" in problems
    assert "proxy.usage_cache_seconds" in problems
