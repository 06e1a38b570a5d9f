"""The observability pack checked by the tools that know it best: promtool (every PromQL
expression, the rules and their unit tests, the Prometheus config), amtool, docker-compose,
and the container health check run as the container would run it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.support.observability import (
    ALERTMANAGER_CONFIG,
    ALERTS_FILE,
    AMTOOL_HINT,
    COMPOSE_FILE,
    COMPOSE_HINT,
    PROMETHEUS_DIR,
    PROMTOOL_HINT,
    RULE_TESTS_DIR,
    alert_rules,
    assert_ok,
    promql_expressions,
    rule_test_files,
    run,
)
from tests.support.tools import require_tool


@pytest.mark.tool
def test_every_expression_parses(tmp_path: Path) -> None:
    """promtool has no expression parser on every version: check each expression as a
    recording rule."""
    promtool = require_tool("promtool", PROMTOOL_HINT)
    expressions = promql_expressions()
    assert len(expressions) > 20
    for where, expr in expressions:
        assert "$" not in expr, f"{where}: unexpanded variable in {expr!r}"
    rules = {
        "groups": [
            {
                "name": "expressions",
                "rules": [
                    {"record": f"check:expression_{i}:{re.sub(r'[^a-z]+', '_', where.lower())}"}
                    | {"expr": expr}
                    for i, (where, expr) in enumerate(expressions)
                ],
            }
        ]
    }
    path = tmp_path / "expressions.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    output = assert_ok(run([promtool, "check", "rules", str(path)]))
    assert f"SUCCESS: {len(expressions)} rules found" in output


@pytest.mark.tool
def test_expression_check_catches_bad_promql(tmp_path: Path) -> None:
    """The recording-rule trick above does reject a broken expression."""
    promtool = require_tool("promtool", PROMTOOL_HINT)
    path = tmp_path / "bad.yml"
    bad = {"groups": [{"name": "g", "rules": [{"record": "r", "expr": "sum by (org (x)"}]}]}
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    assert run([promtool, "check", "rules", str(path)]).returncode != 0


@pytest.mark.tool
def test_promtool_check_rules() -> None:
    promtool = require_tool("promtool", PROMTOOL_HINT)
    output = assert_ok(
        run([promtool, "check", "rules", "--lint=all", "--lint-fatal", str(ALERTS_FILE)])
    )
    assert f"SUCCESS: {len(alert_rules())} rules found" in output


@pytest.mark.tool
def test_promtool_test_rules() -> None:
    promtool = require_tool("promtool", PROMTOOL_HINT)
    files = rule_test_files()
    assert files
    # rule_files in a test file are relative to the test file: run from its directory.
    output = assert_ok(
        run([promtool, "test", "rules", *(p.name for p in files)], cwd=RULE_TESTS_DIR)
    )
    assert "FAILED" not in output
    assert output.count("SUCCESS") == len(files)


@pytest.mark.tool
def test_promtool_test_rules_catches_a_broken_threshold(tmp_path: Path) -> None:
    """The unit tests do pin the thresholds: at 70 % instead of 80 % they fail."""
    promtool = require_tool("promtool", PROMTOOL_HINT)
    alerts = ALERTS_FILE.read_text(encoding="utf-8")
    broken = alerts.replace(
        "claude_usage_utilization_ratio >= 0.80", "claude_usage_utilization_ratio >= 0.70"
    )
    assert broken != alerts
    (tmp_path / "alerts.yml").write_text(broken, encoding="utf-8")
    shutil.copytree(RULE_TESTS_DIR, tmp_path / "tests")
    result = run([promtool, "test", "rules", "alerts_test.yml"], cwd=tmp_path / "tests")
    assert result.returncode != 0
    assert "ClaudeUsageWindowHigh" in result.stdout + result.stderr


@pytest.mark.tool
def test_promtool_check_config() -> None:
    promtool = require_tool("promtool", PROMTOOL_HINT)
    # rule_files resolve against the config file's directory.
    output = assert_ok(
        run(
            [promtool, "check", "config", "--lint=all", "--lint-fatal", "prometheus.yml"],
            cwd=PROMETHEUS_DIR,
        )
    )
    assert "SUCCESS: 2 rule files found" in output


@pytest.mark.tool
def test_amtool_check_config() -> None:
    amtool = require_tool("amtool", AMTOOL_HINT)
    output = assert_ok(run([amtool, "check-config", str(ALERTMANAGER_CONFIG)]))
    assert "SUCCESS" in output


@pytest.mark.tool
@pytest.mark.parametrize("severity", ["critical", "warning"])
def test_amtool_routes_each_severity_to_the_receiver(severity: str) -> None:
    amtool = require_tool("amtool", AMTOOL_HINT)
    assert_ok(
        run(
            [
                amtool,
                "config",
                "routes",
                "test",
                f"--config.file={ALERTMANAGER_CONFIG}",
                "--verify.receivers=notify",
                f"severity={severity}",
                "org=acme",
                "alertname=ClaudeUsageWindowHigh",
            ]
        )
    )


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return [require_tool("docker-compose", COMPOSE_HINT)]
    docker = shutil.which("docker")
    if docker and run([docker, "compose", "version"]).returncode == 0:
        return [docker, "compose"]
    return [require_tool("docker-compose", COMPOSE_HINT)]


@pytest.mark.tool
@pytest.mark.parametrize("profile", ["default", "demo"])
def test_compose_config_is_valid(profile: str) -> None:
    command = compose_command()
    assert_ok(run([*command, "--file", str(COMPOSE_FILE), "--profile", profile, "config", "-q"]))
