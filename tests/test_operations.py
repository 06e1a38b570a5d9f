"""Operating monitor: sharding, config reload (in-process and by SIGHUP), shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from monitor.app import create_app, reload_config
from monitor.config import ConfigError, apply_overrides
from monitor.sharding import Shard, in_shard, shard_of
from monitor.state import UsageStore
from tests.support.upstream import ORG_A, ORG_B, ORG_C, TOKEN_A, TOKEN_B, Upstream, make_config

ORGS_ABC = [
    {"uuid": ORG_A, "name": "acme", "token_env": "TOKEN_A"},
    {"uuid": ORG_B, "name": "beta", "token_env": "TOKEN_B"},
    {"uuid": ORG_C, "name": "gamma", "token_env": "TOKEN_C"},
]


# -- sharding -------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_shards_are_disjoint_and_cover_every_org(count: int) -> None:
    orgs = [str(uuid.UUID(int=n * 7919 + 17, version=4)) for n in range(2000)]
    owners = {
        org: [i for i in range(1, count + 1) if in_shard(org, Shard(i, count))] for org in orgs
    }
    assert all(len(found) == 1 for found in owners.values())
    sizes = [sum(1 for found in owners.values() if found == [i]) for i in range(1, count + 1)]
    # A stable hash spreads orgs evenly enough that no replica is idle or doubly loaded.
    assert min(sizes) > len(orgs) / count * 0.8


def test_shard_is_stable_and_case_insensitive() -> None:
    assert shard_of(ORG_A, 3) == shard_of(ORG_A.upper(), 3)
    assert shard_of(ORG_A, 3) == 3  # a fixed value: the same in every process and release
    assert in_shard(ORG_A, None)


@pytest.mark.parametrize(
    ("shard", "fragment"),
    [("4/3", "between 1 and 3"), ("0/2", "between 1 and 2"), ("two", "like '2/3'")],
)
def test_bad_shard_is_refused_with_its_key(shard: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as refused:
        make_config("http://127.0.0.1:9", poll={"shard": shard})
    assert any(p.startswith("poll.shard:") and fragment in p for p in refused.value.problems)
    config = make_config("http://127.0.0.1:9")
    with pytest.raises(ConfigError) as refused_cli:
        apply_overrides(config, shard=shard)
    assert any("shard" in p and fragment in p for p in refused_cli.value.problems)


async def test_sharded_app_polls_only_its_orgs(upstream: Upstream, aiohttp_client: object) -> None:
    count = 3
    mine = {o["uuid"] for o in ORGS_ABC if shard_of(o["uuid"], count) == 1}
    config = make_config(upstream.url, orgs=ORGS_ABC, poll={"shard": f"1/{count}"})
    store = UsageStore()
    client: TestClient = await aiohttp_client(create_app(config, store=store))  # type: ignore[operator]
    assert {state.target.uuid for state in store} == mine
    await _wait_ready(client)
    polled = {r.org_uuid for r in upstream.sim.requests if r.org_uuid}
    assert polled == mine


# -- reload -----------------------------------------------------------------------------


async def _wait_ready(client: TestClient, attempts: int = 100) -> None:
    for _ in range(attempts):
        response = await client.get("/readyz")
        if response.status == 200:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not ready: {await response.text()}")


async def _metric_lines(client: TestClient, prefix: str) -> list[str]:
    text = await (await client.get("/metrics")).text()
    return [line for line in text.splitlines() if line.startswith(prefix)]


async def test_reload_adds_removes_and_keeps_orgs(
    upstream: Upstream, aiohttp_client: object
) -> None:
    config = make_config(upstream.url, orgs=ORGS_ABC[:2])
    store = UsageStore()
    app = create_app(config, store=store)
    client: TestClient = await aiohttp_client(app)  # type: ignore[operator]
    await _wait_ready(client)
    acme_before = store.get(ORG_A)
    assert acme_before is not None and acme_before.snapshot is not None
    polls_before = dict(acme_before.results)

    new = make_config(upstream.url, orgs=[ORGS_ABC[0], ORGS_ABC[2]])
    assert reload_config(app, lambda: new)
    assert {s.target.uuid for s in store} == {ORG_A, ORG_C}
    acme_after = store.get(ORG_A)
    assert acme_after is acme_before  # untouched org: same state, history kept
    assert all(acme_after.results[k] >= v for k, v in polls_before.items())
    await _wait_ready(client)
    up = await _metric_lines(client, "claude_usage_up{")
    assert any(f'org_uuid="{ORG_C}"' in line for line in up)
    assert not any(f'org_uuid="{ORG_B}"' in line for line in up)
    ok = await _metric_lines(client, "claude_monitor_config_last_reload_successful")
    assert ok == ["claude_monitor_config_last_reload_successful 1.0"]


async def test_invalid_reload_keeps_running_config(
    upstream: Upstream, aiohttp_client: object, caplog: pytest.LogCaptureFixture
) -> None:
    store = UsageStore()
    app = create_app(make_config(upstream.url), store=store)
    client: TestClient = await aiohttp_client(app)  # type: ignore[operator]
    await _wait_ready(client)
    before = {s.target.uuid for s in store}

    def broken() -> object:
        raise ConfigError(["orgs[0].uuid: not a UUID (got 'x')", "poll.bogus: unknown key"], "c")

    assert not reload_config(app, broken)  # type: ignore[arg-type]
    assert {s.target.uuid for s in store} == before
    assert "orgs[0].uuid: not a UUID" in caplog.text and "poll.bogus" in caplog.text
    ok = await _metric_lines(client, "claude_monitor_config_last_reload_successful")
    assert ok == ["claude_monitor_config_last_reload_successful 0.0"]
    await _wait_ready(client)
    assert {s.target.uuid for s in store} == before  # still polling the old orgs


# -- the real process: SIGHUP and SIGTERM ------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_config(path: Path, base_url: str, port: int, orgs: list[dict[str, str]]) -> None:
    lines = [
        "[server]",
        f"port = {port}",
        "shutdown_grace_seconds = 5",
        "[upstream]",
        f'base_url = "{base_url}"',
        "timeout_seconds = 5",
        "[poll]",
        "interval_seconds = 1",
        "max_interval_seconds = 2",
    ]
    for org in orgs:
        lines += ["[[orgs]]", f'uuid = "{org["uuid"]}"', f'name = "{org["name"]}"']
        lines.append(f'token_env = "{org["token_env"]}"')
    path.write_text("\n".join(lines) + "\n")


async def _get_text(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


async def _wait_for(session: aiohttp.ClientSession, url: str, needle: str, present: bool) -> str:
    text = ""
    for _ in range(150):
        try:
            status, text = await _get_text(session, url)
        except aiohttp.ClientConnectionError:
            status = 0
        if status == 200 and (needle in text) == present:
            return text
        await asyncio.sleep(0.1)
    raise AssertionError(f"{needle!r} {'never appeared' if present else 'stayed'} in {url}")


async def test_run_reloads_on_sighup_and_exits_0_on_sigterm(
    upstream: Upstream, tmp_path: Path
) -> None:
    port = _free_port()
    config = tmp_path / "config.toml"
    _write_config(config, upstream.url, port, ORGS_ABC[:1])
    env = {**os.environ, "TOKEN_A": TOKEN_A, "TOKEN_B": TOKEN_B, "TOKEN_C": "unused-c"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "run", "--config", str(config),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    metrics = f"http://127.0.0.1:{port}/metrics"
    try:
        async with aiohttp.ClientSession() as session:
            await _wait_for(session, metrics, f'org_uuid="{ORG_A}"', present=True)
            _write_config(config, upstream.url, port, [ORGS_ABC[1]])
            process.send_signal(signal.SIGHUP)
            text = await _wait_for(session, metrics, f'org_uuid="{ORG_A}"', present=False)
            assert "claude_monitor_config_last_reload_successful 1.0" in text
            await _wait_for(session, metrics, 'claude_usage_up{org="beta"', present=True)

            config.write_text("[poll]\ninterval_seconds = 'soon'\n")
            process.send_signal(signal.SIGHUP)
            await _wait_for(
                session, metrics, "claude_monitor_config_last_reload_successful 0.0", True
            )
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = stderr.decode()
    assert process.returncode == 0, log
    assert "poll.interval_seconds" in log  # the refused reload named its problem
    assert "Traceback" not in log and "Unclosed" not in log
    assert TOKEN_A not in log and TOKEN_B not in log


# -- the Kubernetes example ---------------------------------------------------------------

KUBE = Path(__file__).parent.parent / "deploy" / "kubernetes"


def test_statefulset_gives_each_replica_its_own_shard() -> None:
    yaml = pytest.importorskip("yaml")
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
    yaml = pytest.importorskip("yaml")
    import tomllib

    from monitor.config import parse_config

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
    import subprocess

    done = subprocess.run(
        ["/bin/sh", "-c", script], env=env, capture_output=True, text=True, check=True, timeout=10
    )
    return done.stdout
