"""What ships for deployment, read as files: the Dockerfile, .dockerignore,
docker-compose.yml and the Kubernetes example."""

from __future__ import annotations

import re
import subprocess
import tomllib

import yaml

from monitor.config import apply_overrides, parse_config
from tests.support.config import make_config
from tests.support.observability import (
    ALL_INTERFACES,
    REPO,
    compose,
    parse_volume,
)

# Host files the user writes before using a profile: not in the repository.
USER_SUPPLIED = {"./config.toml": "default"}


def test_compose_services_and_profiles() -> None:
    services = compose()["services"]
    assert set(services) == {"monitor", "monitor-demo", "prometheus", "alertmanager", "grafana"}
    monitor, demo = services["monitor"], services["monitor-demo"]
    assert monitor["profiles"] == ["default"]
    assert demo["profiles"] == ["demo"]
    assert monitor["command"] == [
        "run",
        "--host",
        ALL_INTERFACES,
        "--config",
        "/etc/monitor/config.toml",
    ]
    assert demo["command"] == ["demo", "--host", ALL_INTERFACES]
    assert "monitor" in demo["networks"]["default"]["aliases"]
    assert "./config.toml:/etc/monitor/config.toml:ro" in monitor["volumes"]
    # Secrets pass through from the environment, with no value in the file.
    assert monitor["environment"]
    assert all("=" not in item for item in monitor["environment"])
    for name in ("prometheus", "alertmanager", "grafana"):
        assert "profiles" not in services[name], f"{name} must run in both profiles"


def test_compose_images_are_pinned() -> None:
    for name, service in compose()["services"].items():
        if "build" in service:
            continue
        image = service["image"]
        assert re.search(r":v?\d+\.\d+\.\d+$", image), f"{name}: {image} is not pinned"
    images = {name: s.get("image", "") for name, s in compose()["services"].items()}
    assert images["prometheus"].startswith("prom/prometheus:v3.")
    assert images["alertmanager"].startswith("prom/alertmanager:v0.")
    assert images["grafana"].startswith("grafana/grafana:")


def test_compose_health_and_dependencies() -> None:
    services = compose()["services"]
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition == {"condition": "service_healthy"}, name
            # Depending on a service of a disabled profile breaks the other profile.
            assert "profiles" not in services[dependency], f"{name} depends on {dependency}"
    assert "alertmanager" in services["prometheus"]["depends_on"]
    assert "prometheus" in services["grafana"]["depends_on"]


def test_compose_mounts_exist_read_only_and_volumes_are_named() -> None:
    top_volumes = set(compose().get("volumes") or {})
    named = set()
    for name, service in compose()["services"].items():
        for spec in service.get("volumes", []):
            source, _, mode = parse_volume(spec)
            if source.startswith((".", "/")):
                assert mode == "ro", f"{name}: {spec} is not read-only"
                if source in USER_SUPPLIED:
                    assert service["profiles"] == [USER_SUPPLIED[source]], (
                        f"{name} needs the user-supplied {source}"
                    )
                    continue
                assert (REPO / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in top_volumes, f"{name}: volume {source} not declared"
                named.add(source)
    assert named == top_volumes
    assert {"prometheus", "alertmanager", "grafana"} <= {
        name
        for name, s in compose()["services"].items()
        if any(parse_volume(v)[0] in top_volumes for v in s.get("volumes", []))
    }


def test_compose_prometheus_mounts_its_config() -> None:
    prometheus = compose()["services"]["prometheus"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    mounts = {parse_volume(v)[0]: parse_volume(v)[1] for v in prometheus["volumes"]}
    assert mounts["./prometheus"] == "/etc/prometheus"
    alertmanager = compose()["services"]["alertmanager"]
    mounts = {parse_volume(v)[0]: parse_volume(v)[1] for v in alertmanager["volumes"]}
    config_target = mounts["./alertmanager/alertmanager.yml"]
    assert f"--config.file={config_target}" in alertmanager["command"]


# The Kubernetes example

KUBE = REPO / "deploy" / "kubernetes"


def test_statefulset_gives_each_replica_its_own_shard() -> None:
    sts = yaml.safe_load((KUBE / "statefulset.yaml").read_text())
    replicas = sts["spec"]["replicas"]
    container = sts["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert int(env["SHARDS"]) == replicas
    script = container["args"][0]
    shards = []
    for ordinal in range(replicas):
        # Expand the replica's command as its shell would, then validate what --shard gets.
        expanded = _sh_expand(
            'printf %s "$(( ${HOSTNAME##*-} + 1 ))/${SHARDS}"',
            {"HOSTNAME": f"claude-monitor-{ordinal}", "SHARDS": env["SHARDS"]},
        )
        shards.append(expanded)
    assert shards == [f"{i}/{replicas}" for i in range(1, replicas + 1)]
    assert '--shard "$(( ${HOSTNAME##*-} + 1 ))/${SHARDS}"' in script
    config = make_config("http://127.0.0.1:9")
    for shard in shards:
        assert apply_overrides(config, shard=shard).poll.shard == shard


def test_kubernetes_config_and_scrape_job_are_valid() -> None:
    configmap = next(yaml.safe_load_all((KUBE / "configmap.yaml").read_text()))
    document = tomllib.loads(configmap["data"]["config.toml"])
    config = parse_config(document, environ={"CLAUDE_TOKEN": "x"})
    assert config.server.host == "0.0.0.0"
    jobs = yaml.safe_load((KUBE / "scrape-config.yaml").read_text())
    assert jobs[0]["job_name"] == "claude-monitor"
    for name in ("service.yaml", "servicemonitor.yaml"):
        manifest = yaml.safe_load((KUBE / name).read_text())
        assert manifest["metadata"]["labels"] == {"app.kubernetes.io/name": "claude-monitor"}


def _sh_expand(script: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["/bin/sh", "-c", script], env=env, capture_output=True, text=True, check=True, timeout=10
    )
    return done.stdout
