"""Config: every refusal names its key path, secrets resolve and never show, check-config."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from monitor.config import ConfigError, config_path, load_config, parse_config
from monitor.schema import proxy_connection_share
from tests.support.paths import ROOT

UUID_1 = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"
UUID_2 = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
SECRET = "sk-ant-oat01-very-secret-0123456789"
SESSION = "sess-very-secret-9876543210"
ENV = {"TOKEN_ONE": SECRET, "SESSION_ONE": SESSION, "EMPTY": "  \n", "OTHER": "other-secret-1"}


def org(**fields: Any) -> dict[str, Any]:
    return {"uuid": UUID_1, "token_env": "TOKEN_ONE", **fields}


def problems_of(document: dict[str, Any], environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(document, environ=ENV if environ is None else environ)
    error = caught.value
    for secret in (SECRET, SESSION, "other-secret-1"):
        assert secret not in str(error)
        assert secret not in error.render()
    return error.problems


def single_problem(document: dict[str, Any]) -> str:
    problems = problems_of(document)
    assert len(problems) == 1, problems
    return problems[0]


# -- refusals, one case each ------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "path", "words"),
    [
        ({"sever": {}}, "sever: ", "unknown key"),
        ({"server": {"hots": "localhost"}}, "server.hots: ", "unknown key"),
        ({"orgs": [org(tokn_env="X")]}, "orgs[0].tokn_env: ", "unknown key"),
        ({"orgs": [org(uuid="not-a-uuid")]}, "orgs[0].uuid: ", "not a UUID"),
        ({"orgs": [{"token_env": "TOKEN_ONE"}]}, "orgs[0].uuid: ", "required"),
        ({"server": {"port": 70000}}, "server.port: ", "65535"),
        ({"server": {"port": 0}}, "server.port: ", "greater than or equal to 1"),
        (
            {"orgs": [org(session_key_env="SESSION_ONE")]},
            "orgs[0]: ",
            "more than one credential (token_env and session_key_env)",
        ),
        ({"orgs": [{"uuid": UUID_1}]}, "orgs[0]: ", "no credential"),
        ({"accounts": [{"name": "a"}]}, "accounts[0]: ", "no credential"),
        ({"orgs": [org(token_env="NOT_SET")]}, "orgs[0].token_env: ", "NOT_SET is not set"),
        ({"orgs": [org(token_env="EMPTY")]}, "orgs[0].token_env: ", "EMPTY is empty"),
        (
            {"orgs": [{"uuid": UUID_1, "session_key_env": "NOPE"}]},
            "orgs[0].session_key_env: ",
            "NOPE is not set",
        ),
        (
            {"poll": {"interval_seconds": 60, "max_interval_seconds": 30}},
            "poll.max_interval_seconds: ",
            "below interval_seconds",
        ),
        ({"poll": {"interval_seconds": 0.5}}, "poll.interval_seconds: ", "greater than or equal"),
        ({"upstream": {"base_url": "ftp://example.com"}}, "upstream.base_url: ", "http"),
        ({"upstream": {"base_url": "example.com"}}, "upstream.base_url: ", "absolute"),
        ({"upstream": {"base_url": "https://x.test/?a=1"}}, "upstream.base_url: ", "query"),
        ({"orgs": [org(base_url="claude.ai")]}, "orgs[0].base_url: ", "absolute"),
        (
            {"upstream": {"usage_path": "/api/organizations/{org}/usage"}},
            "upstream.usage_path: ",
            "unknown placeholder {org}",
        ),
        ({"orgs": [org(usage_path="/u/{uuid}")]}, "orgs[0].usage_path: ", "{uuid}"),
        ({"upstream": {"usage_path": "api/usage"}}, "upstream.usage_path: ", "starting with '/'"),
        (
            {"upstream": {"headers": {"Authorization": "Bearer x"}}},
            "upstream.headers: ",
            "credentials come from each org",
        ),
    ],
)
def test_a_wrong_key_is_refused_by_its_path(
    document: dict[str, Any], path: str, words: str
) -> None:
    problem = single_problem(document)
    assert problem.startswith(path), problem
    assert words in problem


def test_bootstrap_path_refuses_any_placeholder_and_says_none_is_allowed() -> None:
    problem = single_problem(
        {"accounts": [{"token_env": "TOKEN_ONE", "bootstrap_path": "/api/{org_uuid}/boot"}]}
    )
    assert problem.startswith("accounts[0].bootstrap_path: ")
    assert "{org_uuid}" in problem
    # It must not tell the user that the very placeholder it refuses is the allowed one.
    assert "only {org_uuid} is allowed" not in problem


def test_a_secret_file_that_is_missing_or_empty_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n  \n")
    problems = problems_of(
        {
            "orgs": [
                {"uuid": UUID_1, "token_file": str(tmp_path / "absent")},
                {"uuid": UUID_2, "session_key_file": str(empty)},
            ]
        }
    )
    assert problems[0].startswith("orgs[0].token_file: ")
    assert "does not exist" in problems[0]
    assert problems[1].startswith("orgs[1].session_key_file: ")
    assert "is empty" in problems[1]


def test_the_same_org_twice_is_refused() -> None:
    problems = problems_of({"orgs": [org(name="a"), org(name="b")]})
    assert problems == ["orgs[1].uuid: the same org as orgs[0]; list it once"]


def test_the_same_name_twice_is_refused() -> None:
    problems = problems_of({"orgs": [org(name="acme"), org(uuid=UUID_2, name="acme")]})
    assert len(problems) == 1
    assert problems[0].startswith("orgs[1].name: ")
    assert "'acme'" in problems[0]


def test_every_problem_is_listed_at_once() -> None:
    document = {
        "server": {"port": 99999, "colour": "blue"},
        "upstream": {"base_url": "nope", "usage_path": "/u/{x}"},
        "poll": {"interval_seconds": 30, "max_interval_seconds": 10},
        "orgs": [
            org(uuid="bad"),
            {"uuid": UUID_1, "token_env": "MISSING_VAR"},
            org(name="dup"),
            org(name="dup2"),
        ],
        "accounts": [{}],
    }
    problems = problems_of(document)
    paths = [p.split(": ", 1)[0] for p in problems]
    expected = [
        "server.port",
        "server.colour",
        "upstream.base_url",
        "upstream.usage_path",
        "poll.max_interval_seconds",
        "orgs[0].uuid",
        "orgs[1].token_env",
        "accounts[0]",
        # duplicates are found on the raw document, and reported with the rest
        "orgs[2].uuid",
        "orgs[3].uuid",
    ]
    assert sorted(paths) == sorted(expected)
    with pytest.raises(ConfigError) as caught:
        parse_config(document, environ=ENV)
    rendered = caught.value.render()
    assert rendered.startswith(f"config: {len(expected)} problems")
    assert all(f"  {p}" in rendered for p in problems)


# -- secrets -----------------------------------------------------------------------------


def test_secrets_resolve_stripped_from_a_variable_or_a_file(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(f"  {SESSION}\n\n")
    config = parse_config(
        {
            "orgs": [
                {"uuid": UUID_1, "token_env": "PADDED"},
                {"uuid": UUID_2, "session_key_file": "secret"},  # relative to base_dir
            ]
        },
        environ={"PADDED": f"\t{SECRET}\n"},
        base_dir=tmp_path,
    )
    bearer, session = (o.live_credential("test").current for o in config.orgs)
    assert bearer.headers() == {"Authorization": f"Bearer {SECRET}"}
    assert session.headers() == {"Cookie": f"sessionKey={SESSION}"}
    assert session.source == f"file {tmp_path / 'secret'}"
    assert bearer.source == "$PADDED"


def test_a_relative_token_file_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "acme.token").write_text(SECRET + "\n")
    path = tmp_path / "conf" / "config.toml"
    path.write_text(f'[[orgs]]\nuuid = "{UUID_1}"\ntoken_file = "acme.token"\n')
    config = load_config(path, environ={})
    credential = config.orgs[0].live_credential("test").current
    assert credential.headers()["Authorization"] == f"Bearer {SECRET}"


def test_a_world_readable_secret_file_is_warned_about(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text(SECRET)
    secret.chmod(0o644)
    warnings: list[str] = []
    parse_config({"orgs": [{"uuid": UUID_1, "token_file": str(secret)}]}, warnings=warnings)
    assert len(warnings) == 1
    assert "chmod 600" in warnings[0]
    assert SECRET not in warnings[0]


def test_secrets_never_show_in_repr_str_or_dumps() -> None:
    config = parse_config(
        {
            "orgs": [org(name="acme"), {"uuid": UUID_2, "session_key_env": "SESSION_ONE"}],
            "accounts": [{"token_env": "OTHER"}],
        },
        environ=ENV,
    )
    credential = config.orgs[0].live_credential("org=acme").current
    renderings = [
        repr(config),
        str(config),
        repr(config.orgs),
        repr(credential),
        str(credential),
        credential.masked(),
        credential.fingerprint,
        str(config.model_dump()),
        config.model_dump_json(),
    ]
    for text in renderings:
        for secret in (SECRET, SESSION, "other-secret-1"):
            assert secret not in text
    assert credential.masked() == f"bearer ******** ({len(SECRET)} chars, from $TOKEN_ONE)"
    assert config.model_dump()["orgs"][0]["token_env"] == "TOKEN_ONE"  # the name, not the value


def test_a_secret_pasted_where_a_variable_name_belongs_is_not_echoed() -> None:
    # A frequent mistake: the token itself in token_env. The refusal must not print it.
    problem = single_problem({"orgs": [org(token_env=SECRET)]})
    assert problem.startswith("orgs[0].token_env: ")
    assert SECRET not in problem
    assert "variable" in problem


def test_a_secret_under_an_unknown_key_is_not_echoed() -> None:
    problem = single_problem({"orgs": [org(token=SECRET)]})
    assert problem.startswith("orgs[0].token: unknown key")


def test_config_path_prefers_flag_then_environment_then_cwd() -> None:
    assert config_path("a.toml", {"MONITOR_CONFIG": "b.toml"}) == Path("a.toml")
    assert config_path(None, {"MONITOR_CONFIG": "b.toml"}) == Path("b.toml")
    assert config_path(None, {}) == Path("config.toml")


def test_load_config_refuses_bad_toml_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.toml")


# -- monitor check-config ----------------------------------------------------------------


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


GOOD = f"""
[upstream]
base_url = "https://api.anthropic.com"

[[orgs]]
uuid = "{UUID_1}"
name = "acme"
token_env = "TOKEN_ONE"

[[orgs]]
uuid = "{UUID_2}"
session_key_env = "SESSION_ONE"
base_url = "https://claude.ai"

[[accounts]]
name = "me"
token_env = "OTHER"
"""


def test_check_config_prints_resolved_orgs_with_secrets_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    path = write_config(tmp_path, GOOD)
    assert main(["check-config", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert f"{path}: OK" in out
    masked = f"bearer ******** ({len(SECRET)} chars, env $TOKEN_ONE; no known expiry)"
    assert f"acme  {UUID_1}  {masked}" in out
    assert f"https://api.anthropic.com/api/organizations/{UUID_1}/usage" in out
    assert f"{UUID_2}  {UUID_2}  session ********" in out
    assert f"https://claude.ai/api/organizations/{UUID_2}/usage" in out
    assert "me  bearer ******** " in out
    for secret in (SECRET, SESSION, "other-secret-1"):
        assert secret not in out + err


def test_check_config_on_a_bad_file_exits_2_naming_every_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TOKEN_ONE", raising=False)
    path = write_config(
        tmp_path, f'[server]\nport = 0\n\n[[orgs]]\nuuid = "{UUID_1}"\ntoken_env = "TOKEN_ONE"\n'
    )
    assert main(["check-config", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{path}: 2 problems" in err
    assert "server.port: " in err
    assert "orgs[0].token_env: environment variable TOKEN_ONE is not set" in err
    assert "Traceback" not in err


def _repo_config_text() -> str:
    """The commented example the README points at."""
    return (ROOT / "config.toml").read_text(encoding="utf-8")


def _variables(document: dict[str, Any]) -> list[str]:
    names = []
    for section in ("orgs", "accounts"):
        for entry in document.get(section, []):
            names += [value for key, value in entry.items() if key.endswith("_env")]
    return names


def test_the_repo_config_is_accepted_once_its_variables_are_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _repo_config_text()
    names = _variables(tomllib.loads(text))
    assert names, "the example config should name at least one variable"
    path = write_config(tmp_path, text)

    for name in names:
        monkeypatch.delenv(name, raising=False)
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    for name in names:
        assert f"environment variable {name} is not set" in err
    assert "Traceback" not in err

    for index, name in enumerate(names):
        monkeypatch.setenv(name, f"example-secret-{index}-abcdef")
    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: OK" in out
    assert "example-secret-" not in out


# -- the upstream connections polls and the proxy share -----------------------------------


def test_proxy_share_leaves_polls_their_concurrency() -> None:
    assert proxy_connection_share(100, 16) == 84  # the defaults: disjoint budgets
    assert proxy_connection_share(100, 100) == 50  # polls never take more than half
    assert proxy_connection_share(2, 16) == 1
    assert proxy_connection_share(1, 16) == 1  # the proxy always keeps one
    for limit in range(1, 40):
        for concurrency in range(1, 40):
            share = proxy_connection_share(limit, concurrency)
            assert 1 <= share <= limit
            if concurrency <= limit // 2:
                assert share + concurrency <= limit


def test_config_warns_when_polls_may_take_the_proxys_connections() -> None:
    quiet: list[str] = []
    parse_config(
        {"upstream": {"max_connections": 100}, "poll": {"concurrency": 50}}, warnings=quiet
    )
    assert quiet == []
    loud: list[str] = []
    parse_config({"upstream": {"max_connections": 10}, "poll": {"concurrency": 6}}, warnings=loud)
    assert len(loud) == 1 and "poll.concurrency (6)" in loud[0] and "max_connections" in loud[0]


def test_a_secret_that_is_not_a_name_or_cannot_be_read_is_refused(tmp_path: Path) -> None:
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00")
    problems = problems_of(
        {
            "orgs": [
                {"uuid": UUID_1, "token_env": ""},
                {"uuid": UUID_2, "token_file": str(tmp_path)},  # a directory
                org(uuid="3c9e1f52-8a47-4d6b-b1e0-7f2a9c4d5e63", token_env=5),
            ],
            "accounts": [{"token_file": str(binary)}, {"session_key_file": ""}],
        }
    )
    assert sorted(problems) == sorted(
        [
            "orgs[0].token_env: must be the name of an environment variable",
            f"orgs[1].token_file: file {tmp_path} cannot be read: Is a directory",
            "orgs[2].token_env: must be the name of an environment variable",
            f"accounts[0].token_file: file {binary} is not UTF-8 text",
            "accounts[1].session_key_file: must be a file path",
        ]
    )
