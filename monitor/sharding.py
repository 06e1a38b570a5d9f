"""Split orgs across replicas: `[poll] shard = "2/3"` keeps the orgs whose stable hash of
`org_uuid` falls on shard 2 of 3, so N replicas poll disjoint sets that cover every org."""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple


class Shard(NamedTuple):
    """This replica is shard `number` (1-based) of `total`."""

    number: int
    total: int


def parse_shard(value: str) -> Shard:
    """`"2/3"` -> Shard(2, 3); ValueError with a message for the config's key path."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value)
    if not match:
        raise ValueError(f"must look like '2/3' (this shard / number of shards), got {value!r}")
    index, count = int(match[1]), int(match[2])
    if count < 1 or not 1 <= index <= count:
        raise ValueError(f"shard {index}/{count}: the index must be between 1 and {count}")
    return Shard(index, count)


def shard_of(org_uuid: str, count: int) -> int:
    """The 1-based shard of an org. sha256, not hash(): the same in every process."""
    digest = hashlib.sha256(org_uuid.strip().lower().encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def in_shard(org_uuid: str, shard: Shard | None) -> bool:
    return shard is None or shard_of(org_uuid, shard.total) == shard.number
