"""Split orgs across replicas: `[poll] shard = "2/3"` keeps the orgs whose stable hash of
`org_uuid` falls on shard 2 of 3, so N replicas poll disjoint sets that cover every org."""

from __future__ import annotations

import hashlib

from monitor.config import parse_shard


def shard_of(org_uuid: str, count: int) -> int:
    """The 1-based shard of an org. sha256, not hash(): the same in every process."""
    digest = hashlib.sha256(org_uuid.strip().lower().encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def in_shard(org_uuid: str, shard: str | None) -> bool:
    if shard is None:
        return True
    index, count = parse_shard(shard)
    return shard_of(org_uuid, count) == index
