"""The real Dockerfile built and run, and the compose `monitor-demo` service brought up, on
a private dockerd (tests/docker_daemon.py) that the tests start and stop themselves.

No container registry is reachable from the machines this runs on, so two things are
made locally, and nothing else differs from a user's build:
- the base: Debian bookworm from `debootstrap --variant=minbase`, from the mirror apt
  uses here (read from apt's sources at run time), `docker import`ed, plus Debian's
  python3 and a venv first on PATH; the Dockerfile takes it through `BASE_IMAGE`;
- the packages: requirements.lock downloaded on the host with pip (checked against its
  hashes), served on 127.0.0.1, and given to the build with pip's own settings
  (`PIP_NO_INDEX`, `PIP_FIND_LINKS`) as build args, with `--network host`.
Skipped without root, dockerd, docker, debootstrap and docker-compose; required in CI.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.health import HEALTHY
from tests.support.docker import Dockerd
from tests.support.net import free_port
from tests.support.paths import ROOT
from tests.support.tools import require_tool

pytestmark = pytest.mark.tool

REPO = ROOT
IMAGE = "claude-monitor:local"  # the tag docker-compose.yml gives the image it builds
BASE = "monitor-test-base:bookworm"
HINT = "apt-get install docker.io debootstrap docker-compose"
IMAGE_UID = 10001  # the Dockerfile's unprivileged user
HEALTHCHECK = ["CMD", "monitor", "healthcheck", "--pid", "1"]
BASE_DOCKERFILE = """\
FROM monitor-test-rootfs:bookworm
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
"""


def require_root() -> None:
    if os.geteuid() != 0:
        message = "dockerd and debootstrap need root"
        if os.environ.get("MONITOR_REQUIRE_TOOLS") == "1":
            pytest.fail(message + " (MONITOR_REQUIRE_TOOLS=1: tools are required here)")
        pytest.skip(message)


def debian_mirror() -> str:
    """The first Debian mirror in apt's sources (not a security or updates suite)."""
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in sources:  # deb822: stanzas of `Key: value` lines
        for stanza in path.read_text().split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in stanza.splitlines() if re.match(r"^\w[\w-]*:", line)
            )
            suites = fields.get("Suites", "").split()
            if "deb" in fields.get("Types", "").split() and any("-" not in s for s in suites):
                return fields["URIs"].split()[0]
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.list")]:
        if path.exists():
            for line in path.read_text().splitlines():
                words = re.sub(r"\[[^]]*\]", "", line).split()  # drop [options]
                if len(words) >= 3 and words[0] == "deb" and "-" not in words[2]:
                    return words[1]
    pytest.fail("no Debian mirror in apt's sources for debootstrap")


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - local
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no $http_proxy
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(what: str, check: Any, seconds: float = 60) -> Any:
    """Call `check` until it returns something true; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {seconds:g} s (last: {last!r})")


# -- the daemon, the base and the image ------------------------------------------------------


@pytest.fixture(scope="module")
def dockerd() -> Iterator[Dockerd]:
    require_root()
    require_tool("debootstrap", HINT)  # before starting a daemon that could not be used
    daemon = Dockerd(require_tool("dockerd", HINT), require_tool("docker", HINT))
    try:
        daemon.wait_ready()
        yield daemon
    finally:
        daemon.stop()


def make_base(dockerd: Dockerd) -> str:
    """Debian bookworm with python3 and a venv first on PATH; its Python's X.Y."""
    debootstrap = require_tool("debootstrap", HINT)
    rootfs = dockerd.folder / "rootfs"  # lives (and is unmounted) with the daemon's folder
    include = "--include=python3,python3-venv"
    dockerd.run(
        [debootstrap, "--variant=minbase", include, "bookworm", str(rootfs), debian_mirror()],
        timeout=600,
    )
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run(
        [dockerd.docker_path, "import", "-", "monitor-test-rootfs:bookworm"],
        stdin=tar.stdout,
        env=dockerd.env,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert tar.stdout is not None
    tar.stdout.close()
    assert tar.wait(timeout=60) == 0
    assert imported.returncode == 0, imported.stderr
    (dockerd.folder / "base").mkdir()
    (dockerd.folder / "base" / "Dockerfile").write_text(BASE_DOCKERFILE)
    dockerd.docker("build", "-q", "-t", BASE, str(dockerd.folder / "base"))
    version = "import sys; print('%d.%d' % sys.version_info[:2])"
    return dockerd.docker("run", "--rm", "--network=none", BASE, "python", "-c", version).stdout


@pytest.fixture(scope="module")
def image(dockerd: Dockerd) -> str:
    """The repository's Dockerfile built on the local base, from a local wheelhouse."""
    python_version = make_base(dockerd).strip()
    wheels = dockerd.folder / "wheels"
    # Hashes are checked here already, and the wheels fit the base's Python.
    lock = str(REPO / "requirements.lock")
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(wheels)]
    wanted = ["--only-binary=:all:", f"--python-version={python_version}"]
    dockerd.run([*pip, *wanted, "--require-hashes", "--requirement", lock], timeout=600)
    handler = partial(QuietFiles, directory=str(wheels))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        index = f"http://127.0.0.1:{server.server_address[1]}/"
        built = dockerd.docker(
            "build", "--network=host", "--tag", IMAGE,
            "--build-arg", f"BASE_IMAGE={BASE}",
            "--build-arg", "PIP_NO_INDEX=1",
            "--build-arg", f"PIP_FIND_LINKS={index}",
            str(REPO),
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert f"Successfully tagged {IMAGE}" in built.stdout
    return IMAGE


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def locked_versions() -> dict[str, str]:
    text = (REPO / "requirements.lock").read_text()
    return {
        re.sub(r"[-_.]+", "-", name).lower(): version
        for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.MULTILINE)
    }


# -- docker run -----------------------------------------------------------------------------


def test_the_image_installs_exactly_the_lock(dockerd: Dockerd, image: str) -> None:
    """Every installed distribution is pinned by the lock, at its version, and the lock
    has nothing the image lacks (but what its markers leave out)."""
    listing = dockerd.docker(
        "run", "--rm", "--network=none", "--entrypoint=pip", image, "list", "--format=json"
    )  # fmt: skip
    installed = {
        re.sub(r"[-_.]+", "-", package["name"]).lower(): package["version"]
        for package in json.loads(listing.stdout)
    }
    assert installed.pop("monitor") == "0.1.0"
    assert installed.pop("pip")  # the base's, like python itself
    locked = {n: v for n, v in locked_versions().items() if n != "tzdata"}  # win32 only
    assert installed == locked


def test_the_container_runs_unprivileged_and_healthy_on_another_port(
    dockerd: Dockerd, image: str
) -> None:
    port, simulator_port = free_port(), free_port()
    name = "monitor-test-run"
    dockerd.docker(
        "run", "--detach", "--name", name, "--network=host",
        # The image's own check, run every second instead of every 30.
        "--health-interval=1s", "--health-timeout=5s", "--health-retries=3",
        "--health-start-period=60s",
        image, "demo", "--host", "127.0.0.1", "--port", str(port),
        "--simulator-port", str(simulator_port),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:

        def answering() -> tuple[int, str] | None:
            if not dockerd.inspect(name)["State"]["Running"]:
                raise AssertionError(f"container stopped: {dockerd.docker('logs', name)}")
            return get(f"{base}/healthz")

        assert wait_for("/healthz", answering) == (200, json.dumps(HEALTHY))
        pid = dockerd.inspect(name)["State"]["Pid"]
        status = Path(f"/proc/{pid}/status").read_text()
        uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)", status, re.MULTILINE)
        assert uids is not None
        assert {int(uids[1]), int(uids[2])} == {IMAGE_UID}  # real and effective: not root

        status_code, metrics = get(f"{base}/metrics")
        assert status_code == 200
        assert 'claude_monitor_build_info{version="0.1.0"' in metrics

        # The proxied call the demo's banner shows, with its token.
        banner = dockerd.docker("logs", name).stdout
        found = re.search(r"Bearer (\S+)' (http://\S+/usage)", banner)
        assert found, banner
        assert found[2].startswith(base)
        status_code, body = get(found[2], {"Authorization": f"Bearer {found[1]}"})
        assert status_code == 200, body
        assert isinstance(json.loads(body), dict)

        def healthy() -> dict[str, Any] | None:
            health: dict[str, Any] = dockerd.inspect(name)["State"]["Health"]
            return health if health["Status"] == "healthy" else None

        health = wait_for("docker inspect: healthy", healthy)
        assert health["Log"][-1]["ExitCode"] == 0
        test = dockerd.inspect(name)["Config"]["Healthcheck"]["Test"]
        assert test == HEALTHCHECK  # the Dockerfile's, on port `port`
        print(f"\ndocker inspect {name}: State.Health = {json.dumps(health)}")
    finally:
        dockerd.docker("rm", "--force", name, check=False)


# -- docker-compose ----------------------------------------------------------------------------


def test_the_compose_demo_service_comes_up(dockerd: Dockerd, image: str) -> None:
    compose_file = REPO / "docker-compose.yml"
    service = yaml.safe_load(compose_file.read_text())["services"]["monitor-demo"]
    assert service["image"] == image
    publish = free_port()
    compose = [require_tool("docker-compose", HINT), "--file", str(compose_file)]
    compose += ["--project-name", "monitor-test", "--profile", "demo"]
    env = {"MONITOR_PUBLISH_PORT": str(publish)}
    dockerd.run([*compose, "up", "--detach", "--no-build", "monitor-demo"], env=env)
    try:
        base = f"http://127.0.0.1:{publish}"
        assert wait_for("/healthz", lambda: get(f"{base}/healthz")) == (200, json.dumps(HEALTHY))
        status_code, metrics = get(f"{base}/metrics")
        assert status_code == 200
        assert "claude_monitor_build_info{" in metrics
        container = dockerd.run([*compose, "ps", "-q", "monitor-demo"], env=env).stdout.strip()
        test = dockerd.inspect(container)["Config"]["Healthcheck"]["Test"]
        assert test == service["healthcheck"]["test"] == HEALTHCHECK
        # The service's health check, run now rather than after its 30 s interval.
        check = dockerd.docker("exec", container, *HEALTHCHECK[1:], check=False)
        assert (check.returncode, check.stderr) == (0, "")
    finally:
        dockerd.run([*compose, "down", "--volumes", "--remove-orphans"], env=env, check=False)
