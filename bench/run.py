"""The benchmark's entry point: `python -m bench [--quick | --tiny] [--out FILE]
[--markdown PAGE [--note TEXT]] [--no-wrk] [--no-nginx]`, or `--render RESULT...`.

Starts every process it needs on 127.0.0.1 (a static nginx upstream and the references in
front of it, monitor daemons, a Python upstream for the polls), runs the scenarios with
bounded sizes and durations, stops everything, writes a JSON result file and prints it as
Markdown, the targets last. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
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

import monitor
from bench.growth import growth
from bench.load import wrk_path
from bench.loops import current_plan, uvloop_version
from bench.nginx import nginx_path
from bench.orgs import org_scenarios
from bench.procs import Processes
from bench.proxy import proxy_scenario
from bench.report import markdown, replace_section
from bench.sizes import FULL, QUICK, TINY, Sizes
from bench.targets import evaluate_targets
from bench.upstream import start_upstream

DEFAULT_OUT = Path(__file__).parent / "results" / "latest.json"
SCENARIOS = ("proxy", "isolation", "poll_scaling", "scrape_cost", "memory", "growth")


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
        "aiohttp": importlib.metadata.version("aiohttp"),
        "monitor": monitor.__version__,
        "uvloop": uvloop_version(),
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
    lines = (done.stdout + done.stderr).strip().splitlines()
    if not lines:
        return None
    # nginx prints "nginx version: nginx/X", wrk its version then a copyright notice.
    return lines[0].removeprefix("nginx version: ").split(" Copyright")[0].strip()


async def run(sizes: Sizes, workdir: Path, *, use_wrk: bool, use_nginx: bool) -> dict[str, Any]:
    nginx = nginx_path() if use_nginx else None
    with Processes(workdir) as procs:
        proxy = await proxy_scenario(
            procs, sizes, workdir, nginx=nginx, use_wrk=use_wrk, plan=current_plan()
        )
        procs.stop_all()  # the proxy targets would only take memory from what follows
        delayed = await start_upstream(procs, "upstream-delayed", delay=sizes.poll_latency)
        orgs = await org_scenarios(procs, sizes, workdir, delayed, use_wrk)
    scenarios = {"proxy": proxy, **orgs}
    scenarios["growth"] = growth(scenarios)
    return scenarios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one repetition, up to 10k orgs")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, for the test suite")
    parser.add_argument("--no-wrk", action="store_true", help="use the aiohttp load generator")
    parser.add_argument(
        "--no-nginx", action="store_true", help="as without nginx: the Python upstream"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file")
    parser.add_argument(
        "--markdown",
        type=Path,
        metavar="PAGE",
        help="also write the tables into PAGE, between its bench:begin/end markers",
    )
    parser.add_argument("--note", help="a line printed above the tables (e.g. the conditions)")
    parser.add_argument(
        "--render",
        type=Path,
        nargs="+",
        metavar="RESULT",
        help="run nothing: print (and --markdown) saved JSON results, oldest first: the "
        "tables of the last, after every target across all of them",
    )
    args = parser.parse_args(argv)
    sizes = TINY if args.tiny else QUICK if args.quick else FULL
    if args.markdown is not None and not args.markdown.is_file():
        parser.error(f"--markdown: {args.markdown} is not a file")
    if args.render is not None:
        saved: list[dict[str, Any]] = [
            json.loads(path.read_text(encoding="utf-8")) for path in args.render
        ]
        last = saved[-1]
        publish(last, args.note or last.get("note"), args.markdown, saved[:-1])
        return 0
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        workdir = Path(tmp)
        try:
            scenarios = asyncio.run(
                run(sizes, workdir, use_wrk=not args.no_wrk, use_nginx=not args.no_nginx)
            )
        except (RuntimeError, TimeoutError, OSError) as exc:
            print(f"bench: failed: {exc}", file=sys.stderr)
            for log in sorted(workdir.rglob("*.log")):
                tail = log.read_text(errors="replace").splitlines()[-15:]
                print(f"--- {log.name}\n" + "\n".join(tail), file=sys.stderr)
            return 1
    result: dict[str, Any] = {
        "mode": sizes.mode,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1),
        "machine": machine(),
        "note": args.note,
        "scenarios": scenarios,
    }
    result["targets"] = evaluate_targets(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    publish(result, args.note, args.markdown)
    print(f"results: {args.out}")
    return 0


def publish(
    result: dict[str, Any],
    note: str | None,
    page_path: Path | None,
    earlier: list[dict[str, Any]] | None = None,
) -> None:
    """Print the result as Markdown (after `earlier` runs' targets, when given); with a
    page, also write it between its markers."""
    text = markdown(result, note, earlier)
    print(text)
    if page_path is not None:
        page = page_path.read_text(encoding="utf-8")
        page_path.write_text(replace_section(page, text, str(page_path)), encoding="utf-8")
        print(f"tables written into {page_path}")
