"""The benchmark's entry point: `python -m bench [--quick] [--tiny] [--out FILE]`.

Starts every process it needs on 127.0.0.1 (a fast upstream, monitor daemons, nginx),
runs the five scenarios with bounded sizes and durations, stops everything, writes a JSON
result file and prints a Markdown table. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.load import wrk_path
from bench.nginx import nginx_path
from bench.procs import Processes
from bench.report import evaluate_targets, markdown
from bench.scenarios import (
    org_scenarios,
    proxy_scenario,
    small_memory,
    start_upstream,
)
from bench.sizes import FULL, QUICK, TINY, Sizes

DEFAULT_OUT = Path(__file__).parent / "results" / "latest.json"
SCENARIOS = ("proxy", "isolation", "poll_scaling", "scrape_cost", "memory")


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": _version([nginx_path() or "nginx", "-v"]),
        "wrk": _version([wrk_path() or "wrk", "-v"]),
    }


def _version(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return None
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0] if text else None


async def run(sizes: Sizes, use_wrk: bool, workdir: Path) -> dict[str, Any]:
    with Processes(workdir) as procs:
        fast = await start_upstream(procs, "upstream-fast")
        proxy = await proxy_scenario(procs, sizes, workdir, fast, use_wrk)
        small = await small_memory(procs, sizes, workdir, fast)
        slow = await start_upstream(procs, "upstream-delayed", delay=sizes.poll_latency)
        polls, scrapes, memory, isolation = await org_scenarios(
            procs, sizes, workdir, slow, use_wrk
        )
    memory["rows"].insert(0, small)
    return {
        "proxy": proxy,
        "isolation": isolation,
        "poll_scaling": polls,
        "scrape_cost": scrapes,
        "memory": memory,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (under a minute)")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, for the test suite")
    parser.add_argument("--no-wrk", action="store_true", help="use the aiohttp load generator")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file")
    args = parser.parse_args(argv)
    sizes = TINY if args.tiny else QUICK if args.quick else FULL
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        workdir = Path(tmp)
        try:
            scenarios = asyncio.run(run(sizes, not args.no_wrk, workdir))
        except (RuntimeError, TimeoutError, OSError) as exc:
            print(f"bench: failed: {exc}", file=sys.stderr)
            for log in sorted(workdir.glob("*.log")):
                tail = log.read_text(errors="replace").splitlines()[-15:]
                print(f"--- {log.name}\n" + "\n".join(tail), file=sys.stderr)
            return 1
    result: dict[str, Any] = {
        "mode": sizes.mode,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1),
        "machine": machine(),
        "scenarios": scenarios,
    }
    result["targets"] = evaluate_targets(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(markdown(result))
    print(f"\nresults: {args.out}")
    return 0
