"""Where a credential's secret comes from, and reading it from there.

A secret comes from an environment variable, a file (plain, or JSON with a dotted key to
the secret and an expiry read beside it, as in Claude Code's credentials file), or the
output of a command run without a shell (as kubectl's exec plugins and AWS's
`credential_process` do). Reading never logs: failures are `SecretError`s that name the
config key they belong to and never contain the secret.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr

from monitor.usage import parse_timestamp

CredentialKind = Literal["bearer", "session"]
SourceKind = Literal["env", "file", "command"]

# Keys a command's JSON output may hold its secret and its expiry under.
COMMAND_TOKEN_KEYS = ("token", "access_token", "accessToken")
EXPIRY_KEYS = ("expiresAt", "expires_at")
# Epoch numbers above this are milliseconds (1e11 s is the year 5138).
_MILLISECONDS_FROM = 1e11
MAX_SECRET_FILE_BYTES = 1024 * 1024
MAX_COMMAND_OUTPUT_BYTES = 1024 * 1024


class SecretError(Exception):
    """A secret that cannot be read. `field` is its config key (`token_file`); the message
    says what is wrong and where, never the secret."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class FileStamp:
    """What says a file changed, without reading it: an atomic rename changes the inode,
    an in-place rewrite the size or the modification time."""

    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileStamp:
        info = path.stat()
        return cls(info.st_ino, info.st_size, info.st_mtime_ns)


@dataclass(frozen=True)
class SecretReading:
    """A secret as read once, with its expiry when the source gave one (Unix seconds)."""

    value: SecretStr = field(repr=False)
    expires_at: float | None = None
    stamp: FileStamp | None = None


@dataclass(frozen=True)
class SecretSpec:
    """Where one org's or account's secret comes from; safe to print."""

    presented: CredentialKind  # sent as `Authorization: Bearer` or `Cookie: sessionKey=`
    source: SourceKind
    field: str  # the config key: token_env, token_file, token_command, session_key_...
    env: str | None = None
    path: Path | None = None
    argv: tuple[str, ...] = ()
    json_key: str | None = None
    timeout: float = 10.0  # commands only
    ttl: float = 300.0  # commands only: how long a result without an expiry is kept

    @property
    def kind(self) -> str:
        """`env`, `file`, `file+json`, `command` or `command+json`."""
        return self.source + ("+json" if self.json_key else "")

    def describe(self) -> str:
        """`$NAME`, `file PATH[, key K]` or `command ARGV[, key K]`."""
        if self.source == "env":
            return f"${self.env}"
        return f"{self.source} {self.location()}"

    def location(self) -> str:
        """The variable, path or argv (and the JSON key), without the kind."""
        if self.source == "env":
            return f"${self.env}"
        key = f", key {self.json_key}" if self.json_key else ""
        where = str(self.path) if self.source == "file" else shlex.join(self.argv)
        return where + key

    @property
    def json_key_field(self) -> str:
        return self.field.rsplit("_", 1)[0] + "_json_key"


def parse_expiry(value: Any) -> float | None:
    """An expiry in epoch milliseconds, epoch seconds or ISO-8601 -> Unix seconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            return parse_timestamp(text)
    if isinstance(value, int | float) and value > 0:
        number = float(value)
        return number / 1000 if number > _MILLISECONDS_FROM else number
    return None


def _expiry_beside(holder: dict[str, Any]) -> float | None:
    for key in EXPIRY_KEYS:
        if key in holder:
            return parse_expiry(holder[key])
    return None


def _json_document(text: str, spec: SecretSpec, where: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise SecretError(spec.json_key_field, f"{where} is not JSON ({reason})") from None


def secret_at_key(document: Any, spec: SecretSpec, where: str) -> tuple[str, float | None]:
    """The string at the dotted `json_key`, and the expiry in the object that holds it."""
    assert spec.json_key is not None
    holder: Any = document
    walked: list[str] = []
    parts = spec.json_key.split(".")
    for part in parts[:-1]:
        holder = holder.get(part) if isinstance(holder, dict) else None
        walked.append(part)
        if not isinstance(holder, dict):
            raise SecretError(spec.json_key_field, f"{where} has no object at {'.'.join(walked)!r}")
    if not isinstance(holder, dict) or parts[-1] not in holder:
        raise SecretError(spec.json_key_field, f"{where} has no key {spec.json_key!r}")
    value = holder[parts[-1]]
    if not isinstance(value, str):
        kind = "null" if value is None else type(value).__name__
        raise SecretError(
            spec.json_key_field, f"{spec.json_key!r} in {where} is {kind}, not a string"
        )
    return value, _expiry_beside(holder)


def secret_from_command_output(text: str, spec: SecretSpec) -> tuple[str, float | None]:
    """A command's stdout: the bare secret, or JSON with the secret under one of
    COMMAND_TOKEN_KEYS (or `json_key`) and an optional expiry beside it."""
    where = f"the output of {spec.describe()}"
    if spec.json_key is not None:
        return secret_at_key(_json_document(text, spec, where), spec, where)
    if not text.lstrip().startswith("{"):
        return text, None
    document = _json_document(text, spec, where)
    if isinstance(document, dict):
        for key in COMMAND_TOKEN_KEYS:
            if isinstance(document.get(key), str):
                return document[key], _expiry_beside(document)
    names = ", ".join(COMMAND_TOKEN_KEYS)
    raise SecretError(spec.field, f"{where} is JSON without a string {names}")


def _non_empty(value: str, spec: SecretSpec, where: str) -> SecretStr:
    if not value.strip():
        raise SecretError(spec.field, f"{where} is empty")
    return SecretStr(value.strip())


def read_env(spec: SecretSpec, environ: dict[str, str] | os._Environ[str]) -> SecretReading:
    assert spec.env is not None
    raw = environ.get(spec.env)
    if raw is None:
        raise SecretError(spec.field, f"environment variable {spec.env} is not set")
    return SecretReading(_non_empty(raw, spec, f"environment variable {spec.env}"))


def read_file(spec: SecretSpec) -> SecretReading:
    """Read a secret file (and its stamp first, so a change while reading is seen next
    time rather than missed)."""
    assert spec.path is not None
    path = spec.path
    try:
        stamp = FileStamp.of(path)
        with path.open("rb") as handle:
            data = handle.read(MAX_SECRET_FILE_BYTES + 1)
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise SecretError(spec.field, f"file {path} does not exist") from None
    except UnicodeDecodeError:
        raise SecretError(spec.field, f"file {path} is not UTF-8 text") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SecretError(spec.field, f"file {path} cannot be read: {reason}") from None
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise SecretError(spec.field, f"file {path} is over 1 MiB: not a secret file")
    where = f"file {path}"
    if spec.json_key is None:
        return SecretReading(_non_empty(text, spec, where), None, stamp)
    value, expires_at = secret_at_key(_json_document(text, spec, where), spec, where)
    return SecretReading(
        _non_empty(value, spec, f"{spec.json_key!r} in {where}"), expires_at, stamp
    )


def mask(text: str, secrets: list[str]) -> str:
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def command_reading(
    spec: SecretSpec, returncode: int, stdout: bytes, stderr: bytes, known: list[str]
) -> SecretReading:
    """What a finished credential command gave. Its output is never logged: only the
    first line of stderr, with every secret in `known` (and its own output) masked."""
    where = spec.describe()
    out = stdout[:MAX_COMMAND_OUTPUT_BYTES].decode("utf-8", errors="replace")
    if returncode != 0:
        first = stderr.decode("utf-8", errors="replace").strip().splitlines()
        said = mask(first[0][:200], [*known, out.strip()]) if first else "no message"
        raise SecretError(spec.field, f"{where} exited with status {returncode}: {said}")
    if not out.strip():
        raise SecretError(spec.field, f"{where} printed nothing")
    value, expires_at = secret_from_command_output(out, spec)
    return SecretReading(_non_empty(value, spec, f"the output of {where}"), expires_at)


def _command_failed_to_start(spec: SecretSpec, exc: OSError) -> SecretError:
    reason = "not found" if isinstance(exc, FileNotFoundError) else (exc.strerror or str(exc))
    return SecretError(spec.field, f"{spec.describe()} cannot be run: {reason}")


def _timed_out(spec: SecretSpec) -> SecretError:
    return SecretError(spec.field, f"{spec.describe()} timed out after {spec.timeout:g} s")


def run_command_now(spec: SecretSpec, known: list[str]) -> SecretReading:
    """Run a credential command and wait (loading the config, before the loop runs)."""
    try:
        done = subprocess.run(  # noqa: S603 - an argv list from the config, no shell
            list(spec.argv),
            capture_output=True,
            timeout=spec.timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise _timed_out(spec) from None
    except OSError as exc:
        raise _command_failed_to_start(spec, exc) from None
    return command_reading(spec, done.returncode, done.stdout, done.stderr, known)


async def run_command(spec: SecretSpec, known: list[str]) -> SecretReading:
    """Run a credential command without blocking the event loop; killed at its timeout."""
    try:
        process = await asyncio.create_subprocess_exec(
            *spec.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise _command_failed_to_start(spec, exc) from None
    try:
        async with asyncio.timeout(spec.timeout):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        raise _timed_out(spec) from None
    finally:
        if process.returncode is None:  # timed out, or the poll was cancelled
            process.kill()
            await process.wait()
    status = process.returncode if process.returncode is not None else -1
    return command_reading(spec, status, stdout, stderr, known)
