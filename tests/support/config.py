"""Configs for tests: one document builder, validated in-process or written as a TOML file
for a real `monitor` process."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitor.config import parse_config
from monitor.schema import Config
from tests.support.upstream import ORG_A, ORG_B, ORG_C, TOKEN_A, TOKEN_B, TOKEN_C

# The variables `make_config` resolves the orgs' `token_env` from.
TEST_ENVIRON = {"TOKEN_A": TOKEN_A, "TOKEN_B": TOKEN_B, "TOKEN_C": TOKEN_C}
ORGS_ABC: list[dict[str, Any]] = [
    {"uuid": ORG_A, "name": "acme", "token_env": "TOKEN_A"},
    {"uuid": ORG_B, "name": "beta", "token_env": "TOKEN_B"},
    {"uuid": ORG_C, "name": "gamma", "token_env": "TOKEN_C"},
]
ORGS_AB = ORGS_ABC[:2]


def config_document(
    base_url: str, orgs: list[dict[str, Any]] | None = None, **sections: Any
) -> dict[str, Any]:
    """A config document whose upstream (the OAuth routes' too, never the real one) is
    `base_url`, polled every second (at most every 5 s) with a 2 s timeout unless
    `sections` say otherwise. Orgs default to A and B."""
    upstream = {"base_url": base_url, "timeout_seconds": 2, **sections.pop("upstream", {})}
    poll = {"interval_seconds": 1, "max_interval_seconds": 5, **sections.pop("poll", {})}
    proxy = {"oauth_base_url": base_url, **sections.pop("proxy", {})}
    return {
        "upstream": upstream,
        "poll": poll,
        "proxy": proxy,
        "orgs": ORGS_AB if orgs is None else orgs,
        **sections,
    }


def make_config(
    base_url: str,
    orgs: list[dict[str, Any]] | None = None,
    *,
    environ: dict[str, str] | None = None,
    **sections: Any,
) -> Config:
    """A validated Config (see `config_document`); secrets come from TEST_ENVIRON."""
    document = config_document(base_url, orgs, **sections)
    return parse_config(document, environ={**TEST_ENVIRON, **(environ or {})}, source="test")


def write_config(
    path: Path, base_url: str, orgs: list[dict[str, Any]] | None = None, **sections: Any
) -> Path:
    """`config_document` as a TOML file at `path`, for `monitor --config`."""
    path.write_text(toml(config_document(base_url, orgs, **sections)), encoding="utf-8")
    return path


def toml(document: Mapping[str, Any]) -> str:
    """Just enough TOML for a config: tables, arrays of tables, scalars, inline tables."""
    lines: list[str] = []
    for key, value in document.items():
        if isinstance(value, Mapping):
            lines += [f"[{key}]", *_pairs(value), ""]
        elif isinstance(value, list):
            for entry in value:
                lines += [f"[[{key}]]", *_pairs(entry), ""]
        else:
            lines.insert(0, f"{key} = {_value(value)}")
    return "\n".join(lines)


def _pairs(table: Mapping[str, Any]) -> list[str]:
    return [f"{key} = {_value(value)}" for key, value in table.items()]


def _value(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_value(v)}" for k, v in value.items()) + " }"
    # JSON's strings, numbers and booleans are TOML's too.
    return json.dumps(value)
