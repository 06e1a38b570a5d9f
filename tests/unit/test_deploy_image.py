"""How monitor is deployed, read as files: the Dockerfile, requirements.lock, the health
check that the Dockerfile and docker-compose.yml share, and the systemd unit (checked by
`systemd-analyze` where it is installed).

tests/system/test_docker.py builds and runs the image for real;
tests/system/test_healthcheck.py runs `monitor healthcheck` against live servers.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.observability import dockerfile_instructions
from tests.support.paths import ROOT
from tests.support.tools import require_tool

REPO = ROOT
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
LOCK = REPO / "requirements.lock"
UNIT = REPO / "deploy" / "systemd" / "claude-monitor.service"
HEALTHCHECK = ["monitor", "healthcheck", "--pid", "1"]
ALL_INTERFACES = "0.0.0.0"
SYSTEMD_HINT = "apt-get install systemd"


@cache
def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


# -- Dockerfile ----------------------------------------------------------------------------


def by_keyword() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for keyword, rest in dockerfile_instructions():
        found.setdefault(keyword, []).append(rest)
    return found


def test_the_base_is_pinned_and_only_it_can_be_swapped() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0][0] == "ARG"
    name, _, default = instructions[0][1].partition("=")
    assert re.fullmatch(r"python:3\.12\.\d+-slim(-\w+)?", default), "base image not pinned"
    assert instructions[1] == ("FROM", f"${{{name}}}")
    assert by_keyword()["FROM"] == [f"${{{name}}}"]


def test_pip_settings_are_build_args_without_defaults() -> None:
    """Unset unless given, so a user's build reads PyPI as usual."""
    args = by_keyword()["ARG"][1:]
    assert args == ["PIP_NO_INDEX", "PIP_FIND_LINKS"]


def test_the_image_installs_the_lock_with_hashes_then_the_package_alone() -> None:
    runs = by_keyword()["RUN"]
    locked = [
        i for i, r in enumerate(runs) if "pip install --require-hashes -r requirements.lock" in r
    ]
    package = [i for i, r in enumerate(runs) if "pip install --no-deps --no-build-isolation ." in r]
    assert len(locked) == len(package) == 1
    assert locked[0] < package[0]
    assert "pip check" in runs[package[0]]
    assert "requirements.lock ./" in by_keyword()["COPY"][0]


def test_the_image_runs_unprivileged_with_the_health_check() -> None:
    keywords = by_keyword()
    (user,) = keywords["USER"]
    assert user.split(":")[0] not in {"root", "0"}
    assert keywords["EXPOSE"] == ["4000"]
    assert json.loads(keywords["ENTRYPOINT"][-1]) == ["monitor"]
    assert json.loads(keywords["CMD"][-1]) == ["run", "--host", ALL_INTERFACES]
    (healthcheck,) = keywords["HEALTHCHECK"]
    options, _, command = healthcheck.partition(" CMD ")
    assert json.loads(command) == HEALTHCHECK
    assert "--timeout=5s" in options


def test_compose_services_share_the_images_health_check() -> None:
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    for name in ("monitor", "monitor-demo"):
        assert services[name]["healthcheck"]["test"] == ["CMD", *HEALTHCHECK], name
        assert services[name]["ports"] == ["127.0.0.1:${MONITOR_PUBLISH_PORT:-4000}:4000"]


def test_dockerignore_keeps_secrets_and_clutter_out() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", "config.toml", ".venv", "tests"} <= patterns
    # What the Dockerfile copies must not be ignored.
    copied = {"monitor", "pyproject.toml", "README.md", "requirements.lock"}
    assert not patterns & copied


# -- requirements.lock ------------------------------------------------------------------------


def lock_entries() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, sha256 hashes) of every pin of requirements.lock."""
    text = LOCK.read_text(encoding="utf-8").replace("\\\n", " ")
    entries: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith(("#", " ")):
            requirement = Requirement(line.split(" --hash")[0].strip())
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"not pinned: {line[:80]}"
            hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})\b", line)
            entries[str(canonicalize_name(requirement.name))] = (spec.version, hashes)
    return entries


def test_the_lock_pins_every_dependency_and_the_build_backend_with_hashes() -> None:
    project = pyproject()
    wanted = [Requirement(r) for r in project["project"]["dependencies"]]
    wanted += [Requirement(r) for r in project["build-system"]["requires"]]
    for extra in ("otlp", "uvloop"):  # what the image runs with
        wanted += [Requirement(r) for r in project["project"]["optional-dependencies"][extra]]
    entries = lock_entries()
    for requirement in wanted:
        name = str(canonicalize_name(requirement.name))
        assert name in entries, f"{requirement.name} is not in requirements.lock"
        version, _ = entries[name]
        assert requirement.specifier.contains(version), f"{name}=={version} is not {requirement}"
    for name, (_, hashes) in entries.items():
        assert hashes, f"{name} has no hash"
    assert "monitor" not in entries


def test_the_lock_is_refreshed_by_the_documented_command() -> None:
    """The build backend enters the lock through a dependency group equal to it, and the
    command in the lock's header is the one the README gives."""
    project = pyproject()
    assert project["dependency-groups"]["build"] == project["build-system"]["requires"]
    header = LOCK.read_text(encoding="utf-8").splitlines()[1].lstrip("# ").strip()
    assert header.startswith("uv pip compile pyproject.toml --group build")
    assert "--generate-hashes" in header
    assert "--universal" in header  # one lock for every Python the image may have
    assert f"{header}\n" in (REPO / "README.md").read_text(encoding="utf-8")


# -- systemd -------------------------------------------------------------------------------


def unit_settings() -> list[tuple[str, str]]:
    return [
        (key.strip(), value.strip())
        for key, _, value in (
            line.partition("=")
            for line in UNIT.read_text(encoding="utf-8").splitlines()
            if "=" in line and not line.startswith("#")
        )
    ]


def test_the_unit_is_hardened_and_reloads_with_sighup() -> None:
    settings = dict(unit_settings())
    expected = {
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter": "@system-service",
        "CapabilityBoundingSet": "",
        "MemoryDenyWriteExecute": "yes",
        "LockPersonality": "yes",
        "RestrictNamespaces": "yes",
        "ExecReload": "/bin/kill -HUP $MAINPID",
    }
    assert {key: settings.get(key) for key in expected} == expected
    assert settings["ExecStart"].startswith("/opt/claude-monitor/bin/monitor run --config /")


def test_the_unit_loads_the_token_files_as_credentials() -> None:
    settings = dict(unit_settings())
    name, _, folder = settings["LoadCredential"].partition(":")
    assert (name, folder) == ("secret", "/etc/claude-monitor/credentials")
    # The path config.toml's token_file is told to use.
    text = UNIT.read_text(encoding="utf-8")
    assert 'token_file = "/run/credentials/claude-monitor.service/secret_acme"' in text


def unit_with_a_real_executable(tmp_path: Path) -> Path:
    """The unit with ExecStart pointed at this environment's `monitor`: `verify` checks
    that the program exists, and /opt/claude-monitor is not installed here."""
    monitor = Path(sys.executable).with_name("monitor")
    assert monitor.exists(), f"{monitor}: install the package (pip install -e .)"
    path = tmp_path / UNIT.name
    text = UNIT.read_text(encoding="utf-8")
    path.write_text(text.replace("/opt/claude-monitor/bin/monitor", str(monitor)))
    return path


@pytest.mark.tool
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze", SYSTEMD_HINT)
    unit = unit_with_a_real_executable(tmp_path)
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Unknown keys and bad values are only warnings, naming the file.
    assert unit.name not in output, output


@pytest.mark.tool
def test_systemd_analyze_security_rates_the_unit_ok(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze", SYSTEMD_HINT)
    unit = unit_with_a_real_executable(tmp_path)
    result = subprocess.run(
        [analyze, "security", "--offline=true", "--threshold=20", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", result.stdout)
    assert found, result.stdout[-500:]
    assert float(found[1]) <= 2.0
    assert found[2] in {"OK", "SAFE"}
