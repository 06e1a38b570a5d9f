"""`monitor demo` as a process with a `[proxy]` section of the user's: its banner shows a
curl line for each OAuth route, each works as printed, the cache answers a repeated read
and the shield answers for the token its poller saw rate-limited."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

from monitor.simulator.demo import GLOBEX, SOYLENT
from tests.support.net import free_port
from tests.support.process import MonitorProcess, assert_clean_exit


def fetch(url: str, token: str) -> tuple[int, dict[str, str], bytes]:
    authorization = {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(url, headers=authorization)  # noqa: S310 - local
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - local
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


def soylent_polled(status: int, body: str) -> bool:
    wanted = 'claude_usage_polls_total{org="soylent",org_uuid="' + SOYLENT.uuid
    return status == 200 and f'{wanted}",result="rate_limited"}} 1\n' in body


def test_the_demo_serves_the_oauth_routes_it_prints(tmp_path: Path) -> None:
    config = tmp_path / "proxy.toml"
    config.write_text("[proxy]\nusage_cache_seconds = 30\nshield_rate_limits = true\n")
    port, sim_port = free_port(), free_port()
    args = ["demo", "--config", str(config), "--port", str(port), "--simulator-port", str(sim_port)]
    demo = MonitorProcess(args, env={"no_proxy": "*"})
    base = f"http://127.0.0.1:{port}"
    try:
        demo.wait_until(f"{base}/metrics", soylent_polled)
        usage = fetch(f"{base}/api/oauth/usage", GLOBEX.token)
        again = fetch(f"{base}/api/oauth/usage", GLOBEX.token)
        profile = fetch(f"{base}/api/oauth/profile", GLOBEX.token)
        limited = fetch(f"{base}/api/oauth/usage", SOYLENT.token)
        code, out, err = demo.stop()
    finally:
        demo.kill()
    assert_clean_exit(code, err)
    printed = re.findall(r"curl -H 'Authorization: Bearer (\S+)' (\S+/api/oauth/\w+)", out)
    assert printed == [
        (GLOBEX.token, f"{base}/api/oauth/usage"),
        (GLOBEX.token, f"{base}/api/oauth/profile"),
    ]
    assert usage[0] == 200 and "five_hour" in json.loads(usage[2])
    assert usage[1]["X-Cache"] == "MISS"
    assert again[0] == 200 and again[1]["X-Cache"] == "HIT" and again[2] == usage[2]
    assert profile[0] == 200
    assert json.loads(profile[2])["organization"]["name"] == GLOBEX.name
    assert limited[0] == 429 and limited[1]["X-Monitor-Shielded"] == "1"
    assert GLOBEX.token not in err and SOYLENT.token not in err
