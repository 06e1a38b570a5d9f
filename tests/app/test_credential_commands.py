"""Credential commands (`token_command`), run for real: a small script written by each test
prints the token, as `security find-generic-password -w`, `op read` or `vault kv get`
would, or hangs, or fails."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from monitor.app import Parts
from monitor.config import ConfigError
from monitor.credentials import EXPIRY_MARGIN_SECONDS
from monitor.state import PollResult
from tests.conftest import MakeServer
from tests.support.config import make_config
from tests.support.credentials import Renewing, renewing_upstream, token_script
from tests.support.upstream import ORG_A

MakeParts = Callable[..., Awaitable[Parts]]


@pytest.fixture
async def renewing(aiohttp_server: MakeServer, tmp_path: Path) -> Renewing:
    return await renewing_upstream(aiohttp_server, tmp_path)


class Command:
    """The script, what it answers next, and how often it ran."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir()
        self.folder = folder
        self.script = token_script(folder)

    def answer(self, document: object) -> None:
        text = document if isinstance(document, str) else json.dumps(document)
        (self.folder / "answer.json").write_text(text)

    def mode(self, mode: str) -> None:
        (self.folder / "mode").write_text(mode)

    @property
    def runs(self) -> int:
        return int((self.folder / "runs").read_text())

    def org(self, **more: object) -> dict[str, object]:
        return {
            "uuid": ORG_A,
            "name": "acme",
            "token_command": [sys.executable, str(self.script)],
            "credential_command_timeout_seconds": 2,
            **more,
        }


@pytest.fixture
def command(tmp_path: Path) -> Command:
    return Command(tmp_path / "command")


async def started(make_parts: MakeParts, renewing: Renewing, org: dict[str, object]) -> Parts:
    parts = await make_parts(make_config(renewing.upstream.url, [org]), clock=renewing.clock)
    parts.poller.apply_targets()
    return parts


def credential_of(parts: Parts) -> object:
    state = parts.store.get(ORG_A)
    assert state is not None
    return state.target.credential


async def test_a_json_answer_is_cached_until_just_before_its_expiry(
    make_parts: MakeParts, renewing: Renewing, command: Command
) -> None:
    token = renewing.issue(lifetime=3600)
    command.answer({"token": token.token, "expires_at": token.expires_at * 1000})
    parts = await started(make_parts, renewing, command.org())
    assert command.runs == 1  # once while the config loads
    state = parts.store.get(ORG_A)
    assert state is not None
    assert state.target.credential.expires_at == pytest.approx(token.expires_at)

    for _ in range(3):
        assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    assert command.runs == 1  # cached: the answer is good for an hour

    renewed = renewing.issue(lifetime=3600)
    command.answer({"accessToken": renewed.token, "expiresAt": renewed.expires_at * 1000})
    # A second inside the margin of expiry: exactly at its edge, the expiry's round trip
    # through milliseconds can land a rounding step either side of the clock.
    renewing.clock.advance(3600 - EXPIRY_MARGIN_SECONDS + 1)
    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    assert command.runs == 2
    assert renewing.bearers_seen()[-1] == f"Bearer {renewed.token}"
    assert state.target.credential.reloads == {"changed": 1, "unchanged": 0, "error": 0}


async def test_a_bare_answer_is_kept_for_the_ttl(
    make_parts: MakeParts, renewing: Renewing, command: Command
) -> None:
    command.answer(renewing.issue().token + "\n")
    org = command.org(credential_command_ttl_seconds=120)
    parts = await started(make_parts, renewing, org)
    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    renewing.clock.advance(119)
    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    assert command.runs == 1
    renewing.clock.advance(1)
    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    assert command.runs == 2  # the same answer: counted as unchanged
    state = parts.store.get(ORG_A)
    assert state is not None
    assert state.target.credential.reloads == {"changed": 0, "unchanged": 1, "error": 0}


async def test_a_command_that_hangs_past_its_timeout_keeps_the_last_good_secret(
    make_parts: MakeParts, renewing: Renewing, command: Command, caplog: pytest.LogCaptureFixture
) -> None:
    command.answer(renewing.issue().token)
    parts = await started(make_parts, renewing, command.org(credential_command_timeout_seconds=0.5))
    command.mode("hang")
    renewing.clock.advance(300)  # the default TTL: the answer is stale
    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "credential reload failed: org=acme result=error" in warnings[0]
    assert f"{sys.executable} {command.script} timed out after 0.5 s" in warnings[0]
    state = parts.store.get(ORG_A)
    assert state is not None
    assert state.target.credential.reloads["error"] == 1


async def test_a_command_that_exits_1_is_a_counted_failure_with_its_stderr_masked(
    make_parts: MakeParts, renewing: Renewing, command: Command, caplog: pytest.LogCaptureFixture
) -> None:
    token = renewing.issue()
    command.answer(json.dumps({"token": token.token}))
    parts = await started(make_parts, renewing, command.org())
    command.mode("fail")  # its stderr repeats the token it printed before
    renewing.clock.advance(300)
    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "exited with status 1: keychain locked; last answer was" in warning
    assert '{"token": "***"}' in warning
    assert token.token not in caplog.text


async def test_a_401_runs_the_command_again_and_retries_once(
    make_parts: MakeParts, renewing: Renewing, command: Command, caplog: pytest.LogCaptureFixture
) -> None:
    old = renewing.issue(lifetime=60)
    command.answer(old.token)  # no expiry given: monitor cannot know it lapses
    parts = await started(make_parts, renewing, command.org())
    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    renewing.clock.advance(61)
    new = renewing.issue()
    command.answer(new.token)  # the keychain holds a renewed one already
    caplog.clear()
    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    assert command.runs == 2
    assert renewing.bearers_seen()[-2:] == [f"Bearer {old.token}", f"Bearer {new.token}"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    ("mode", "problem"),
    [
        ("fail", "exited with status 1: keychain locked"),
        ("hang", "timed out after 0.5 s"),
    ],
)
def test_a_failing_command_at_start_is_a_config_error(
    command: Command, mode: str, problem: str
) -> None:
    command.answer("(nothing yet)")  # what its stderr repeats when it fails
    command.mode(mode)
    org = command.org(credential_command_timeout_seconds=0.5)
    with pytest.raises(ConfigError) as refused:
        make_config("http://127.0.0.1:9", [org])
    (line,) = refused.value.problems
    assert line.startswith(f"orgs[0].token_command: command {sys.executable} {command.script}")
    assert problem in line


def test_an_empty_answer_at_start_is_a_config_error(command: Command) -> None:
    command.answer("   ")
    with pytest.raises(ConfigError, match=r"orgs\[0\]\.token_command: .* printed nothing"):
        make_config("http://127.0.0.1:9", [command.org()])
