"""Sharding: which replica polls which org, and how a bad shard is refused."""

from __future__ import annotations

import uuid

import pytest

from monitor.config import ConfigError, apply_overrides
from monitor.sharding import Shard, in_shard, shard_of
from tests.support.config import make_config
from tests.support.upstream import ORG_A


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
