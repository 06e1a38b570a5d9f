"""Credential files followed as another program renews them: polls against the simulator,
whose tokens expire, with the file on disk rewritten the ways real programs do it."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from monitor.app import Parts
from monitor.config import ConfigError
from monitor.state import PollResult
from tests.conftest import MakeServer
from tests.support.config import make_config
from tests.support.credentials import Renewing, renewing_upstream
from tests.support.upstream import ORG_A, ORG_C, TOKEN_A

MakeParts = Callable[..., Awaitable[Parts]]


@pytest.fixture
async def renewing(aiohttp_server: MakeServer, tmp_path: Path) -> Renewing:
    return await renewing_upstream(aiohttp_server, tmp_path)


async def polled_parts(make_parts: MakeParts, renewing: Renewing) -> Parts:
    config = make_config(renewing.upstream.url, [renewing.org()])
    parts = await make_parts(config, clock=renewing.clock)
    parts.poller.apply_targets()
    return parts


def warnings_about(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and text in r.getMessage()
    ]


async def test_an_atomically_replaced_file_is_used_at_the_next_poll(
    make_parts: MakeParts, renewing: Renewing
) -> None:
    parts = await polled_parts(make_parts, renewing)
    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    first = renewing.bearers_seen()[-1]
    renewing.renew()  # write a new file, rename it over the old one
    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    second = renewing.bearers_seen()[-1]
    assert second != first
    credential = parts.store.get(ORG_A).target.credential  # type: ignore[union-attr]
    assert credential.reloads == {"changed": 1, "unchanged": 0, "error": 0}
    # Nothing changed since: the stat alone says so, nothing is read again.
    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    assert credential.reloads["changed"] + credential.reloads["unchanged"] == 1


async def test_a_file_rewritten_in_place_is_used_too(
    make_parts: MakeParts, renewing: Renewing
) -> None:
    parts = await polled_parts(make_parts, renewing)
    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    inode = renewing.path.stat().st_ino
    token = renewing.issue()
    document = {"claudeAiOauth": {"accessToken": token.token, "refreshToken": "unused-refresh"}}
    with renewing.path.open("r+", encoding="utf-8") as handle:  # same inode, new content
        handle.write(json.dumps(document))
        handle.truncate()
    assert renewing.path.stat().st_ino == inode
    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    assert renewing.bearers_seen()[-1] == f"Bearer {token.token}"


async def test_a_file_that_vanishes_for_a_moment_keeps_the_last_good_secret(
    make_parts: MakeParts, renewing: Renewing, caplog: pytest.LogCaptureFixture
) -> None:
    parts = await polled_parts(make_parts, renewing)
    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    kept = renewing.path.read_bytes()
    renewing.path.unlink()  # as between an editor's delete and write
    for _ in range(3):
        assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    logged = warnings_about(caplog, "credential reload failed")
    assert len(logged) == 1  # one warning, not one per poll
    assert "org=acme" in logged[0]
    assert "does not exist; keeping the last good secret" in logged[0]
    renewing.path.write_bytes(b"")  # back, but empty for a moment: same again
    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    renewing.path.write_bytes(kept)
    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    credential = parts.store.get(ORG_A).target.credential  # type: ignore[union-attr]
    assert credential.reloads == {"changed": 0, "unchanged": 1, "error": 4}
    assert "credential reload recovered: org=acme" in caplog.text


async def test_a_malformed_file_after_start_is_logged_counted_and_survived(
    make_parts: MakeParts, renewing: Renewing, caplog: pytest.LogCaptureFixture
) -> None:
    parts = await polled_parts(make_parts, renewing)
    renewing.path.write_text('{"claudeAiOauth": {"accessToken": ')  # a half-written file
    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    (logged,) = warnings_about(caplog, "credential reload failed")
    assert f"file {renewing.path} is not JSON" in logged
    renewing.path.write_text('{"claudeAiOauth": {"accessToken": 42}}')
    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    assert "'claudeAiOauth.accessToken' in file" in caplog.text
    credential = parts.store.get(ORG_A).target.credential  # type: ignore[union-attr]
    assert credential.reloads["error"] == 2


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{oops", "orgs[0].token_json_key: file {path} is not JSON"),
        ('{"claudeAiOauth": {}}', "orgs[0].token_json_key: file {path} has no key"),
        ('{"claudeAiOauth": {"accessToken": 1}}', "is int, not a string"),
        ('{"claudeAiOauth": {"accessToken": ""}}', "orgs[0].token_file: "),
    ],
)
def test_a_bad_json_file_at_start_is_a_config_error_by_key_path(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "credentials.json"
    path.write_text(content)
    org = {"uuid": ORG_A, "token_file": str(path), "token_json_key": "claudeAiOauth.accessToken"}
    with pytest.raises(ConfigError) as refused:
        make_config("http://127.0.0.1:9", [org])
    assert any(problem.format(path=path) in line for line in refused.value.problems), (
        refused.value.problems
    )


@pytest.mark.parametrize(
    ("org", "problem"),
    [
        ({"token_env": "TOKEN_A", "token_json_key": "a.b"}, "orgs[0].token_json_key: goes with"),
        ({"token_file": "x", "session_key_json_key": "a"}, "orgs[0].session_key_json_key: goes"),
        ({"token_file": "x", "token_json_key": "a..b"}, "orgs[0].token_json_key: must be a"),
        ({"token_command": "security -w"}, "orgs[0].token_command: must be a list"),
        ({"token_command": []}, "orgs[0].token_command: must be a non-empty list"),
        ({"token_file": "${NOPE}/acme"}, "orgs[0].token_file: $NOPE in the path is not set"),
    ],
)
def test_credential_keys_are_checked_by_key_path(org: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        make_config("http://127.0.0.1:9", [{"uuid": ORG_A, **org}])
    assert any(line.startswith(problem) for line in refused.value.problems), refused.value.problems


def test_a_token_file_path_may_name_a_variable(tmp_path: Path) -> None:
    (tmp_path / "acme").write_text(TOKEN_A)
    org = {"uuid": ORG_A, "token_file": "${CREDENTIALS_DIRECTORY}/acme"}
    config = make_config(
        "http://127.0.0.1:9", [org], environ={"CREDENTIALS_DIRECTORY": str(tmp_path)}
    )
    assert config.orgs[0].secret_spec.path == tmp_path / "acme"


async def test_an_expired_credential_is_not_sent_until_the_file_is_renewed(
    make_parts: MakeParts, renewing: Renewing
) -> None:
    renewing.renew(lifetime=60)
    parts = await polled_parts(make_parts, renewing)
    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    renewing.clock.advance(61)  # past the expiry the file states; nothing renewed it
    sent = len(renewing.bearers_seen())
    assert await parts.poller.poll(ORG_A) is PollResult.CREDENTIAL_EXPIRED
    assert len(renewing.bearers_seen()) == sent  # no request with a dead token
    state = parts.store.get(ORG_A)
    assert state is not None
    assert "not sent: the credential" in (state.last_error or "")
    assert "expired at" in (state.last_error or "")
    renewing.renew()
    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    assert len(renewing.bearers_seen()) == sent + 1


async def test_a_401_then_a_renewed_file_is_one_successful_poll_and_no_failure_logged(
    make_parts: MakeParts, renewing: Renewing, caplog: pytest.LogCaptureFixture
) -> None:
    # The file holds a bare token with no expiry, and is renewed with the same size and
    # its old timestamps put back: the stat sees no change, only the 401 tells.
    plain = renewing.path.with_name("token")
    old = renewing.issue(lifetime=60)
    plain.write_text(old.token)
    config = make_config(renewing.upstream.url, [{"uuid": ORG_A, "token_file": str(plain)}])
    parts = await make_parts(config, clock=renewing.clock)
    parts.poller.apply_targets()
    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    renewing.clock.advance(61)
    before = plain.stat()
    new = renewing.issue()
    plain.write_text(new.token)
    os.utime(plain, ns=(before.st_atime_ns, before.st_mtime_ns))
    caplog.clear()

    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    assert renewing.bearers_seen()[-2:] == [f"Bearer {old.token}", f"Bearer {new.token}"]
    state = parts.store.get(ORG_A)
    assert state is not None
    assert state.results[PollResult.UNAUTHORIZED] == 0
    assert state.results[PollResult.SUCCESS] == 2
    assert not [r for r in caplog.records if "poll failed" in r.getMessage()]
    assert state.target.credential.reloads["changed"] == 1


async def test_a_401_with_the_same_secret_is_an_ordinary_failure(
    make_parts: MakeParts, renewing: Renewing
) -> None:
    parts = await polled_parts(make_parts, renewing)
    renewing.upstream.sim.issued.clear()  # the upstream revoked every issued token
    assert await parts.poller.poll(ORG_A) is PollResult.UNAUTHORIZED
    credential = parts.store.get(ORG_A).target.credential  # type: ignore[union-attr]
    assert credential.reloads == {"changed": 0, "unchanged": 1, "error": 0}
    assert len(renewing.bearers_seen()) == 1  # re-read once, nothing new: no retry


async def test_a_discovery_account_follows_its_file_too(
    make_parts: MakeParts, renewing: Renewing
) -> None:
    account = {"name": "team", "token_file": str(renewing.path)}
    account["token_json_key"] = "claudeAiOauth.accessToken"
    config = make_config(renewing.upstream.url, [], accounts=[account])
    parts = await make_parts(config, clock=renewing.clock)
    assert await parts.discovery.discover(0)
    first = renewing.upstream.sim.requests[-1].header("Authorization")
    renewing.renew()
    assert await parts.discovery.discover(0)
    assert renewing.upstream.sim.requests[-1].header("Authorization") != first
    assert parts.discovery.accounts[0].credential.reloads["changed"] == 1
    # the discovered orgs are polled with the account's credential as it is now
    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    assert renewing.bearers_seen()[-1] == renewing.upstream.sim.requests[-1].header("Authorization")
    assert ORG_C not in parts.store  # not a member of this account
