"""The commented rotating-credential org of the example `config.toml` works as written
once uncommented, with a Claude Code credentials file where it says."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from monitor.config import parse_config

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE = ROOT / "config.toml"


def commented_orgs(text: str) -> list[str]:
    """Each commented-out `[[orgs]]` table of the file, uncommented (its own commented
    alternatives stay comments)."""
    blocks = re.findall(r"^# \[\[orgs\]\]\n(?:^# .*\n)+", text, flags=re.MULTILINE)
    return ["\n".join(line[2:] for line in block.splitlines()) for block in blocks]


def test_the_commented_claude_code_org_is_valid_once_uncommented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (block,) = commented_orgs(EXAMPLE.read_text(encoding="utf-8"))
    monkeypatch.setenv("HOME", str(tmp_path))  # for the "~" of the path
    (tmp_path / ".claude").mkdir()
    document = {"claudeAiOauth": {"accessToken": "example-0123456789", "expiresAt": 4102444800000}}
    (tmp_path / ".claude" / ".credentials.json").write_text(json.dumps(document))
    config = parse_config(tomllib.loads(block), environ={})
    (org,) = config.orgs
    assert org.name == "laptop"
    assert org.secret_spec.kind == "file+json"
    assert org.secret_spec.path == tmp_path / ".claude" / ".credentials.json"
    credential = org.live_credential("org=laptop")
    assert credential.expires_at == 4102444800.0
    assert org.usage_path == "/api/oauth/usage"
