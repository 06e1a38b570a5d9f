"""A private dockerd for the image tests, started and stopped by the tests themselves.

It keeps everything it can in one temporary folder (data root, exec root, socket, pid
file, config, client config) and is started with the bridge, iptables, NAT and IP
forwarding all off, so it leaves the machine's network as it found it: the image tests
use the host network, and compose's own bridge network goes with `compose down`. The
stop checks that: the interfaces, the forwarding switches and the iptables rules must
be what they were before the start. What dockerd insists on writing outside the folder
(`/etc/docker/key.json`, `/run/docker/plugins`, `/run/containerd/s`) is removed again
when it was not there before.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Written by dockerd or its containerd wherever it runs; removed if they were not there.
OUTSIDE_FILES = (Path("/etc/docker/key.json"),)
OUTSIDE_DIRS = (  # deepest first
    Path("/run/docker/plugins"),
    Path("/run/docker"),
    Path("/run/containerd/s"),
    Path("/run/containerd"),
)


class DockerError(AssertionError):
    pass


def network_state() -> dict[str, str]:
    """What a dockerd could change on the host's network."""
    state = {"interfaces": " ".join(sorted(p.name for p in Path("/sys/class/net").iterdir()))}
    for switch in ("ipv4/ip_forward", "ipv6/conf/all/forwarding"):
        path = Path("/proc/sys/net") / switch
        if path.exists():
            state[switch] = path.read_text().strip()
    iptables = shutil.which("iptables")
    if iptables:
        for table in ("filter", "nat"):
            result = subprocess.run(
                [iptables, "-w", "-t", table, "-S"], capture_output=True, text=True, check=False
            )
            state[f"iptables {table}"] = result.stdout + result.stderr
    return state


class Dockerd:
    """`dockerd` in a temporary folder; `docker(...)` runs the client against it."""

    def __init__(self, dockerd: str, docker: str) -> None:
        self.docker_path = docker
        self.folder = Path(tempfile.mkdtemp(prefix="monitor-docker-"))  # short: socket paths
        self.network_before = network_state()
        self.outside_before = {p for p in (*OUTSIDE_FILES, *OUTSIDE_DIRS) if p.exists()}
        (self.folder / "daemon.json").write_text("{}")  # not the machine's /etc/docker one
        self.env = {
            **os.environ,
            "DOCKER_HOST": f"unix://{self.folder / 'docker.sock'}",
            "DOCKER_CONFIG": str(self.folder / "client"),
            # The classic builder: Debian's docker.io builds with it, and a newer client
            # without the buildx plugin needs it said.
            "DOCKER_BUILDKIT": "0",
        }
        self.log = (self.folder / "dockerd.log").open("wb")
        self.proc = subprocess.Popen(
            [
                dockerd,
                f"--data-root={self.folder / 'data'}",
                f"--exec-root={self.folder / 'exec'}",
                f"--pidfile={self.folder / 'dockerd.pid'}",
                f"--host={self.env['DOCKER_HOST']}",
                f"--config-file={self.folder / 'daemon.json'}",
                "--containerd-namespace=monitor-test",
                "--containerd-plugins-namespace=monitor-test-plugins",
                "--bridge=none",
                "--iptables=false",
                "--ip-forward=false",
                "--ip-masq=false",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DockerError(f"dockerd exited {self.proc.returncode}:\n{self.log_tail()}")
            if self.docker("version", check=False, timeout=10).returncode == 0:
                return
            time.sleep(0.2)
        raise DockerError(f"dockerd not ready within {seconds:g} s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return (self.folder / "dockerd.log").read_text(errors="replace")[-3000:]

    def docker(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 300,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return self.run([self.docker_path, *args], check=check, timeout=timeout, env=env)

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 300,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """A command with this daemon's client environment (plus `env`)."""
        result = subprocess.run(
            list(argv),
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            output = (result.stdout + result.stderr)[-4000:]
            raise DockerError(f"{' '.join(argv)} exited {result.returncode}:\n{output}")
        return result

    def inspect(self, name: str) -> dict[str, Any]:
        """`docker inspect NAME`: State, Config, ..."""
        (document,) = json.loads(self.docker("inspect", name).stdout)
        assert isinstance(document, dict)
        return document

    def stop(self) -> None:
        """Remove every container, stop dockerd by its PID, unmount and remove the folder,
        then check that the network is as it was."""
        try:
            if self.proc.poll() is None:
                ids = self.docker("ps", "-aq", check=False, timeout=30).stdout.split()
                if ids:
                    self.docker("rm", "-f", *ids, check=False, timeout=60)
        finally:
            self._stop_daemon()
            self._unmount_all()
            self.log.close()
            shutil.rmtree(self.folder, ignore_errors=True)
            self._remove_outside_leftovers()
        after = network_state()
        assert after == self.network_before, (
            f"dockerd changed the network: before {self.network_before}, after {after}"
        )

    def _stop_daemon(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def _unmount_all(self) -> None:
        """dockerd leaves `<exec-root>/netns/default` mounted; a failed debootstrap may
        leave its proc and sys. Deepest first."""
        prefix = str(self.folder) + "/"
        for mount_point in sorted(self._mount_points(prefix), key=len, reverse=True):
            subprocess.run(["umount", mount_point], capture_output=True, check=False)
        left = self._mount_points(prefix)
        assert not left, f"still mounted: {left}"

    @staticmethod
    def _mount_points(prefix: str) -> list[str]:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
        points = [line.split()[4].replace("\\040", " ") for line in lines]
        return [point for point in points if point.startswith(prefix)]

    def _remove_outside_leftovers(self) -> None:
        for path in OUTSIDE_FILES:
            if path not in self.outside_before:
                path.unlink(missing_ok=True)
        for path in OUTSIDE_DIRS:
            if path not in self.outside_before and path.is_dir() and not any(path.iterdir()):
                path.rmdir()
