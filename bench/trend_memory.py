"""What the recent-utilization history and the window lengths cost in memory.

`python -m bench.trend_memory [--orgs N] [--windows W] [--poll-every S]` builds a
`UsageStore` of N orgs and records, for each, 5 hours of polls S seconds apart of W
windows (every one with a value and a reset time), one of which (`claude_code`) resets
every 3 h. The default S, 307 s, is just over the history's spacing: each poll adds a
point, so every history is as full as it gets (47 of its 48 points within the 4 hours
kept); `--poll-every 60` is the poll interval of a busy org.
`tracemalloc` then counts the bytes still allocated by `monitor/trend.py`,
`monitor/history.py` and `monitor/window_length.py`: the history and length learning
alone, with the snapshots and the rest of the store left out. It prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from monitor import history, trend, window_length
from monitor.credentials import LiveCredential
from monitor.history import POINTS
from monitor.secret_sources import SecretReading, SecretSpec
from monitor.state import UsageStore
from monitor.targets import OrgTarget
from monitor.usage import UsageSnapshot, UsageWindow

HOURS = 5.0
POLL_EVERY = 307.0
WINDOWS = ("five_hour", "seven_day", "seven_day_opus", "seven_day_sonnet", "claude_code")
MODULES = tuple(Path(m.__file__ or "").resolve() for m in (trend, history, window_length))


def _targets(count: int) -> list[OrgTarget]:
    spec = SecretSpec(presented="bearer", source="env", field="token_env", env="BENCH_TOKEN")
    credential = LiveCredential(spec, SecretReading(SecretStr("bench-token"), None), label="bench")
    return [
        OrgTarget(
            f"00000000-0000-4000-8000-{n:012d}", f"org{n}", "http://127.0.0.1:9", "/u", credential
        )
        for n in range(count)
    ]


def _snapshot(names: tuple[str, ...], poll: int, now: float, start: float) -> UsageSnapshot:
    windows = []
    for index, name in enumerate(names):
        # claude_code resets half way through; the others keep one reset time
        period = 3 * 3600.0 if name == "claude_code" else 7 * 86400.0
        resets_at = start + period * (1 + int((now - start) // period))
        windows.append(UsageWindow(name, (poll + index) / 1000, resets_at))
    return UsageSnapshot(tuple(windows), None)


def measure(
    orgs: int, windows: int = len(WINDOWS), poll_every: float = POLL_EVERY
) -> dict[str, Any]:
    names = WINDOWS[:windows] + tuple(f"codename_{n}" for n in range(windows - len(WINDOWS)))
    store = UsageStore()
    targets = _targets(orgs)
    store.set_targets(targets)
    start = 1_800_000_000.0
    tracemalloc.start()
    began = time.perf_counter()
    polls = int(HOURS * 3600 / poll_every) + 1
    for poll in range(polls):
        now = start + poll * poll_every
        snapshot = _snapshot(names, poll, now, start)  # one object for every org, as cheap
        for target in targets:
            store.record_success(target.uuid, snapshot, end=now, duration=0.1)
    seconds = time.perf_counter() - began
    allocated = tracemalloc.take_snapshot()
    tracemalloc.stop()
    kept = sum(
        stat.size
        for stat in allocated.statistics("filename")
        if Path(stat.traceback[0].filename).resolve() in MODULES
    )
    lengths = [len(t.history) for state in store for t in state.trends]
    return {
        "orgs": orgs,
        "windows_per_org": windows,
        "polls_per_org": polls,
        "poll_every_seconds": poll_every,
        "points_per_window": POINTS,
        "points_kept": {"min": min(lengths), "max": max(lengths), "total": sum(lengths)},
        "bytes": kept,
        "mib": round(kept / 2**20, 1),
        "bytes_per_window": round(kept / (orgs * windows)),
        "seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.trend_memory")
    parser.add_argument("--orgs", type=int, default=10_000)
    parser.add_argument("--windows", type=int, default=len(WINDOWS))
    parser.add_argument("--poll-every", type=float, default=POLL_EVERY)
    args = parser.parse_args(argv)
    json.dump(measure(args.orgs, args.windows, args.poll_every), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
