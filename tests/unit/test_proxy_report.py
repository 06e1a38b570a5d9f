"""`monitor check-config` says where the OAuth routes go and whether the usage cache and
the rate-limit shield are on."""

from __future__ import annotations

import io

from monitor.config import parse_config
from monitor.report import print_config


def checked(proxy: dict[str, object]) -> str:
    out = io.StringIO()
    print_config(parse_config({"proxy": proxy}, environ={}), "config.toml", [], out)
    return out.getvalue()


def test_the_defaults_say_off() -> None:
    assert (
        "proxy:    oauth routes to https://api.anthropic.com, usage cache off, "
        "rate-limit shield off\n"
    ) in checked({})


def test_settings_in_force_are_spelled_out() -> None:
    proxy = {
        "oauth_base_url": "http://127.0.0.1:8080/",
        "usage_cache_seconds": 30,
        "usage_cache_max_entries": 50,
        "usage_cache_max_bytes": 65536,
        "shield_rate_limits": True,
    }
    assert (
        "proxy:    oauth routes to http://127.0.0.1:8080, usage cache 30 s (at most 50 "
        "answers, 65536 bytes), rate-limit shield on\n"
    ) in checked(proxy)
