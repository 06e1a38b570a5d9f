"""Reading a secret from a variable, a file (plain or JSON) or a command's output."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from monitor.secret_sources import (
    SecretError,
    SecretSpec,
    command_reading,
    mask,
    parse_expiry,
    read_env,
    read_file,
    run_command_now,
    secret_from_command_output,
)
from tests.support.upstream import ROTATING_TOKEN

TOKEN = ROTATING_TOKEN
EXPIRES_MS = 1_796_000_000_000


def file_spec(path: Path, json_key: str | None = None) -> SecretSpec:
    return SecretSpec("bearer", "file", "token_file", path=path, json_key=json_key)


def command_spec(*argv: str, json_key: str | None = None, timeout: float = 10.0) -> SecretSpec:
    return SecretSpec(
        "bearer", "command", "token_command", argv=argv, json_key=json_key, timeout=timeout
    )


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (EXPIRES_MS, 1_796_000_000.0),  # epoch milliseconds, as Claude Code writes it
        (1_796_000_000, 1_796_000_000.0),  # epoch seconds
        (1_796_000_000.5, 1_796_000_000.5),
        ("1796000000000", 1_796_000_000.0),
        ("2026-11-29T22:00:00Z", 1_795_989_600.0),
        ("2026-11-29T23:00:00+01:00", 1_795_989_600.0),
        ("2026-11-29T22:00:00", None),  # no offset: refused, not guessed
        ("soon", None),
        (True, None),
        (None, None),
        (-5, None),
        ([1], None),
    ],
)
def test_an_expiry_in_ms_seconds_or_iso(value: object, seconds: float | None) -> None:
    assert parse_expiry(value) == seconds


def test_a_claude_code_credentials_file_gives_the_token_and_its_expiry(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    document = {"claudeAiOauth": {"accessToken": TOKEN, "expiresAt": EXPIRES_MS, "x": 1}}
    path.write_text(json.dumps(document))
    reading = read_file(file_spec(path, "claudeAiOauth.accessToken"))
    assert reading.value.get_secret_value() == TOKEN
    assert reading.expires_at == 1_796_000_000.0
    assert reading.stamp is not None
    assert reading.stamp.size == path.stat().st_size


def test_a_plain_file_is_the_stripped_secret(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"\n  {TOKEN}\n")
    reading = read_file(file_spec(path))
    assert reading.value.get_secret_value() == TOKEN
    assert reading.expires_at is None


@pytest.mark.parametrize(
    ("content", "key", "field", "fragment"),
    [
        ("{not json", "a.b", "token_json_key", "is not JSON"),
        ('{"a": {"c": "x"}}', "a.b", "token_json_key", "has no key 'a.b'"),
        ('{"a": "x"}', "a.b", "token_json_key", "has no object at 'a'"),
        ('{"a": {"b": 12}}', "a.b", "token_json_key", "'a.b' in file"),
        ('{"a": {"b": null}}', "a.b", "token_json_key", "is null, not a string"),
        ('{"a": {"b": "  "}}', "a.b", "token_file", "is empty"),
        ("[1, 2]", "a.b", "token_json_key", "has no object at 'a'"),
        ("   \n", None, "token_file", "is empty"),
    ],
)
def test_a_bad_file_names_its_key_and_never_the_secret(
    tmp_path: Path, content: str, key: str | None, field: str, fragment: str
) -> None:
    path = tmp_path / "credentials.json"
    path.write_text(content)
    with pytest.raises(SecretError) as refused:
        read_file(file_spec(path, key))
    assert refused.value.field == field
    assert fragment in refused.value.message
    assert str(path) in refused.value.message


def test_a_missing_or_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="does not exist"):
        read_file(file_spec(tmp_path / "absent"))
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SecretError, match="not UTF-8"):
        read_file(file_spec(tmp_path / "binary"))


def test_an_environment_variable() -> None:
    spec = SecretSpec("session", "env", "session_key_env", env="KEY")
    assert read_env(spec, {"KEY": f" {TOKEN}\n"}).value.get_secret_value() == TOKEN
    with pytest.raises(SecretError, match="KEY is not set"):
        read_env(spec, {})
    with pytest.raises(SecretError, match="KEY is empty"):
        read_env(spec, {"KEY": " "})


@pytest.mark.parametrize(
    ("output", "expires_at"),
    [
        (f"{TOKEN}\n", None),
        (json.dumps({"token": TOKEN}), None),
        (json.dumps({"access_token": TOKEN, "expires_at": "2026-11-29T22:00:00Z"}), 1795989600.0),
        (json.dumps({"accessToken": TOKEN, "expiresAt": EXPIRES_MS}), 1_796_000_000.0),
    ],
)
def test_command_output_bare_or_json(output: str, expires_at: float | None) -> None:
    value, expiry = secret_from_command_output(output, command_spec("x"))
    assert value.strip() == TOKEN
    assert expiry == expires_at


def test_command_output_with_a_json_key_and_without_a_token() -> None:
    output = json.dumps({"claudeAiOauth": {"accessToken": TOKEN, "expiresAt": EXPIRES_MS}})
    spec = command_spec("security", json_key="claudeAiOauth.accessToken")
    assert secret_from_command_output(output, spec) == (TOKEN, 1_796_000_000.0)
    with pytest.raises(SecretError, match="JSON without a string token"):
        secret_from_command_output('{"secret": "x"}', command_spec("x"))


def test_a_failing_command_says_why_with_its_stderr_masked() -> None:
    spec = command_spec("vault", "kv", "get")
    with pytest.raises(SecretError) as refused:
        command_reading(spec, 2, b"", f"denied for {TOKEN}\nsecond line\n".encode(), [TOKEN])
    message = refused.value.message
    assert message == "command vault kv get exited with status 2: denied for ***"
    with pytest.raises(SecretError, match="printed nothing"):
        command_reading(spec, 0, b"  \n", b"", [])


def test_a_command_that_prints_its_own_token_to_stderr_is_masked_too() -> None:
    with pytest.raises(SecretError) as refused:
        command_reading(command_spec("x"), 1, TOKEN.encode(), f"bad {TOKEN}".encode(), [])
    assert TOKEN not in refused.value.message


def test_commands_run_for_real_with_a_timeout(tmp_path: Path) -> None:
    script = tmp_path / "token.py"
    script.write_text(f"print({json.dumps({'token': TOKEN, 'expires_at': EXPIRES_MS})!r})")
    reading = run_command_now(command_spec(sys.executable, str(script)), [])
    assert reading.value.get_secret_value() == TOKEN
    assert reading.expires_at == 1_796_000_000.0
    hang = tmp_path / "hang.py"
    hang.write_text("import time; time.sleep(30)")
    with pytest.raises(SecretError, match=r"timed out after 0\.5 s"):
        run_command_now(command_spec(sys.executable, str(hang), timeout=0.5), [])
    with pytest.raises(SecretError, match="cannot be run: not found"):
        run_command_now(command_spec(str(tmp_path / "absent-program")), [])


def test_a_spec_describes_its_source_without_a_secret(tmp_path: Path) -> None:
    assert SecretSpec("bearer", "env", "token_env", env="T").describe() == "$T"
    spec = file_spec(tmp_path / "c.json", "claudeAiOauth.accessToken")
    assert spec.kind == "file+json"
    assert spec.describe() == f"file {tmp_path / 'c.json'}, key claudeAiOauth.accessToken"
    command = command_spec("op", "read", "op://vault/claude token")
    assert command.kind == "command"
    assert command.describe() == "command op read 'op://vault/claude token'"


def test_mask_replaces_the_longest_secret_first() -> None:
    assert mask("ab abc", ["ab", "abc"]) == "*** ***"
    assert mask("nothing here", ["", "secret"]) == "nothing here"
