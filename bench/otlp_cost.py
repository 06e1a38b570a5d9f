"""What one OTLP push costs at N orgs: `python -m bench.otlp_cost [N]` (default 10,000).

Fills a store with N orgs (the 2026 payload shape, each polled once), renders `/metrics`
as the push does, and sends it with the real exporter to a local sink that only reads
the bodies. Prints the CPU of each step (the sink runs in its own thread, not counted).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from monitor.app import wire
from monitor.config import parse_config
from monitor.exposition import UsageExposition
from monitor.metrics import build_registry, render_exposition
from monitor.otlp_export import OtlpSender
from monitor.usage import parse_usage

PAYLOAD = Path(__file__).resolve().parent.parent / "tests/fixtures/upstream/usage_2026_limits.json"


class Sink(BaseHTTPRequestHandler):
    received = 0

    def do_POST(self) -> None:
        Sink.received += len(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def measure(orgs: int) -> dict[str, float]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/metrics"
    document = {
        "orgs": [
            {"uuid": str(uuid.UUID(int=i + 1)), "name": f"org-{i}", "token_env": "T"}
            for i in range(orgs)
        ],
        "otlp": {"endpoint": endpoint},
    }
    config = parse_config(document, environ={"T": "bench-token"})
    parts = wire(config)
    parts.poller.apply_targets()
    payload = json.loads(PAYLOAD.read_text())
    now = time.time()
    for index, state in enumerate(parts.store):
        payload["five_hour"]["utilization"] = index % 100
        snapshot = parse_usage(payload)
        parts.store.record_success(state.target.uuid, snapshot, end=now, duration=0.05)
        parts.store.set_next_poll(state.target.uuid, now + 60)
    registry, _ = build_registry(parts.config)
    exposition = UsageExposition(parts.store)
    assert config.otlp is not None
    sender = OtlpSender(config.otlp, instance="bench:4000", start_ns=time.time_ns())
    figures: dict[str, float] = {"rss_before_mb": rss_mb()}
    for run in ("first", "second"):  # the second reuses the exposition's per-org cache
        cpu = time.thread_time()
        chunks = await render_exposition(exposition, registry, True)
        figures[f"{run}_render_cpu_s"] = time.thread_time() - cpu
        cpu, wall = time.thread_time(), time.perf_counter()
        outcome = sender.push(chunks, time.time_ns())
        figures[f"{run}_push_cpu_s"] = time.thread_time() - cpu
        figures[f"{run}_push_wall_s"] = time.perf_counter() - wall
        assert outcome.result == "success", outcome
        figures["points"], figures["requests"] = outcome.points, outcome.requests
    figures["bytes_sent_mb"] = Sink.received / 2 / 1e6
    figures["rss_peak_mb"] = rss_mb()
    sender.shutdown()
    server.shutdown()
    return figures


def main() -> int:
    orgs = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    for name, value in asyncio.run(measure(orgs)).items():
        print(f"{name:24} {value:,.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
