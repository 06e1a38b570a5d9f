"""How big and how long each mode runs; every loop in the benchmark is bounded by these."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    mode: str
    proxy_seconds: float
    proxy_connections: tuple[int, ...]
    isolation_orgs: int
    isolation_seconds: float
    isolation_connections: int
    scrape_orgs: tuple[int, ...]
    scrape_repeats: int
    poll_orgs: tuple[int, ...]
    poll_latency: float
    poll_concurrency: int
    memory_orgs: tuple[int, int]
    # Wall-clock bound for one daemon to poll every org once.
    poll_timeout: float

    def daemon_sizes(self) -> list[int]:
        """Every org count a daemon is started with after the proxy scenario."""
        sizes = {*self.scrape_orgs, *self.poll_orgs, self.memory_orgs[1], self.isolation_orgs}
        return sorted(sizes)


FULL = Sizes(
    mode="full",
    proxy_seconds=5,
    proxy_connections=(1, 32),
    isolation_orgs=10_000,
    isolation_seconds=10,
    isolation_connections=8,
    scrape_orgs=(100, 1_000, 10_000),
    scrape_repeats=5,
    poll_orgs=(1_000, 10_000),
    poll_latency=0.05,
    poll_concurrency=100,
    memory_orgs=(10, 10_000),
    poll_timeout=120,
)

QUICK = Sizes(
    mode="quick",
    proxy_seconds=2,
    proxy_connections=(1, 32),
    isolation_orgs=10_000,
    isolation_seconds=3,
    isolation_connections=8,
    scrape_orgs=(100, 1_000, 10_000),
    scrape_repeats=2,
    poll_orgs=(1_000, 10_000),
    poll_latency=0.05,
    poll_concurrency=100,
    memory_orgs=(10, 10_000),
    poll_timeout=40,
)

# For the test suite: the same code paths, a few seconds in all.
TINY = Sizes(
    mode="tiny",
    proxy_seconds=1,
    proxy_connections=(1, 4),
    isolation_orgs=20,
    isolation_seconds=1,
    isolation_connections=2,
    scrape_orgs=(5, 20),
    scrape_repeats=1,
    poll_orgs=(20,),
    poll_latency=0.05,
    poll_concurrency=10,
    memory_orgs=(5, 20),
    poll_timeout=30,
)
