"""How big and how long each mode runs; every loop in the benchmark is bounded by these."""

from __future__ import annotations

from dataclasses import dataclass

# The org count the targets are set at.
TARGET_ORGS = 10_000


@dataclass(frozen=True)
class Sizes:
    mode: str
    # Each figure is the median of this many repetitions inside the run (the proxy
    # scenario: rounds over every target, interleaved).
    repeats: int
    proxy_seconds: float
    proxy_connections: tuple[int, int]  # (low, high): latency at low, throughput at high
    proxy_warmup_seconds: float  # per target before the first round; 0: none
    # The poll, scrape and memory scenarios run at each of these (one daemon per count
    # and repetition).
    org_counts: tuple[int, ...]
    cached_scrapes: int  # scrapes after the first render; their median is "cached"
    isolation_orgs: int
    isolation_seconds: float
    isolation_connections: int
    poll_latency: float
    poll_concurrency: int
    # Wall-clock bound for one daemon to poll every org once, on top of 3x the ideal.
    poll_timeout: float


FULL = Sizes(
    mode="full",
    repeats=3,
    proxy_seconds=5,
    proxy_connections=(1, 32),
    proxy_warmup_seconds=1,
    org_counts=(100, 1_000, 10_000, 30_000),
    cached_scrapes=5,
    isolation_orgs=TARGET_ORGS,
    isolation_seconds=8,
    isolation_connections=8,
    poll_latency=0.05,
    poll_concurrency=100,
    poll_timeout=120,
)

QUICK = Sizes(
    mode="quick",
    repeats=1,
    proxy_seconds=3,
    proxy_connections=(1, 32),
    proxy_warmup_seconds=0,
    org_counts=(100, 1_000, 10_000),
    cached_scrapes=3,
    isolation_orgs=TARGET_ORGS,
    isolation_seconds=3,
    isolation_connections=8,
    poll_latency=0.05,
    poll_concurrency=100,
    poll_timeout=60,
)

# For the test suite: the same code paths, a few seconds in all.
TINY = Sizes(
    mode="tiny",
    repeats=1,
    proxy_seconds=1,
    proxy_connections=(1, 4),
    proxy_warmup_seconds=0,
    org_counts=(5, 20),
    cached_scrapes=2,
    isolation_orgs=20,
    isolation_seconds=1,
    isolation_connections=2,
    poll_latency=0.05,
    poll_concurrency=10,
    poll_timeout=30,
)
