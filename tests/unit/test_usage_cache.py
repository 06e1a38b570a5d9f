"""The usage cache's rules as plain calls: keys, freshness, bypass, bounds, captures and
flights. Time is a `FakeClock`; nothing here waits on the wall clock."""

from __future__ import annotations

import asyncio

import pytest
from multidict import CIMultiDict

from monitor.proxy_rules import caller_credential, credentials_digest
from monitor.schema import MAX_CACHE_ENTRY_BYTES, ProxyConfig
from monitor.usage_cache import (
    CacheKey,
    Capture,
    StoredAnswer,
    UsageCache,
    age_seconds,
    bypasses,
    cache_key,
    is_fresh,
    may_store,
)
from tests.support.clock import FakeClock

PATH = "/api/oauth/usage"


def headers(*pairs: tuple[str, str]) -> CIMultiDict[str]:
    return CIMultiDict(pairs)


def key_for(*pairs: tuple[str, str], route: str = "oauth_usage", query: str = "") -> CacheKey:
    sent = headers(*pairs)
    return cache_key(route, PATH, query, credentials_digest(sent), sent)


def answer(
    body: bytes = b'{"five_hour": null}', at: float = 1000.0, status: int = 200
) -> StoredAnswer:
    return StoredAnswer(status, "OK", (("Content-Type", "application/json"),), body, at)


def test_identical_reads_share_a_key_and_any_difference_splits_it() -> None:
    token = ("Authorization", "Bearer one")
    assert key_for(token) == key_for(token)
    assert key_for(token) != key_for(("Authorization", "Bearer two"))
    assert key_for(token) != key_for(token, ("Cookie", "sessionKey=x"))
    assert key_for(token) != key_for(token, query="a=1")
    assert key_for(token) != key_for(token, route="usage")
    assert key_for(token) != key_for(token, ("Accept-Encoding", "gzip"))
    assert key_for(token) != key_for(token, ("anthropic-beta", "oauth-2025-04-20"))
    # Header names are case-insensitive, and unrelated headers do not matter.
    assert key_for(token, ("User-Agent", "a")) == key_for(("authorization", "Bearer one"))


def test_a_key_holds_a_digest_never_the_credential() -> None:
    key = key_for(("Authorization", "Bearer secret-value-123"), ("Cookie", "sessionKey=k-456"))
    assert "secret-value-123" not in repr(key) and "k-456" not in repr(key)


def test_the_callers_fingerprint_is_the_one_an_org_with_that_secret_has() -> None:
    bearer = caller_credential(headers(("Authorization", "Bearer tok-1 ")))
    session = caller_credential(headers(("Cookie", "a=b; sessionKey=sk-1")))
    assert bearer is not None and session is not None
    assert bearer.headers() == {"Authorization": "Bearer tok-1"}
    assert session.headers() == {"Cookie": "sessionKey=sk-1"}
    assert bearer.fingerprint.startswith("bearer:") and session.fingerprint.startswith("session:")
    assert caller_credential(headers(("Authorization", "Basic abc"))) is None
    assert caller_credential(headers(("Cookie", "other=1"))) is None


@pytest.mark.parametrize(
    ("sent", "bypass", "store"),
    [
        ((), False, True),
        ((("Cache-Control", "no-cache"),), True, True),
        ((("Cache-Control", "max-age=0"),), True, True),
        ((("Cache-Control", "private, No-Store"),), True, False),
        ((("Pragma", "no-cache"),), True, True),
        ((("Cache-Control", "max-age=60"),), False, True),
    ],
)
def test_cache_control_of_the_caller(
    sent: tuple[tuple[str, str], ...], bypass: bool, store: bool
) -> None:
    assert bypasses(headers(*sent)) is bypass
    assert may_store(headers(*sent)) is store


def test_freshness_and_age() -> None:
    stored = answer(at=1000.0)
    assert is_fresh(stored, 1000.0, 30) and is_fresh(stored, 1029.9, 30)
    assert not is_fresh(stored, 1030.0, 30)
    assert not is_fresh(stored, 999.0, 30)  # a clock stepped back: stale, not fresh forever
    assert age_seconds(stored, 1012.7) == 12
    assert age_seconds(stored, 990.0) == 0


def cache(clock: FakeClock, **settings: float) -> UsageCache:
    config = ProxyConfig.model_validate({"usage_cache_seconds": 30, **settings})
    return UsageCache(lambda: config, clock)


def test_an_entry_is_served_until_its_ttl_runs_out() -> None:
    clock = FakeClock(1000.0)
    kept = cache(clock)
    key = key_for(("Authorization", "Bearer one"))
    assert kept.put(key, answer(at=clock()))
    clock.advance(29.9)
    assert kept.fresh(key) is not None
    clock.advance(0.1)
    assert kept.fresh(key) is None
    assert len(kept) == 0 and kept.size_bytes == 0


def test_entries_are_bounded_by_count_least_recently_used_first() -> None:
    clock = FakeClock(1000.0)
    kept = cache(clock, usage_cache_max_entries=2)
    keys = [key_for(("Authorization", f"Bearer {n}")) for n in range(3)]
    kept.put(keys[0], answer())
    kept.put(keys[1], answer())
    assert kept.fresh(keys[0]) is not None  # now the most recent
    kept.put(keys[2], answer())
    assert len(kept) == 2
    assert kept.fresh(keys[1]) is None
    assert kept.fresh(keys[0]) is not None and kept.fresh(keys[2]) is not None


def test_entries_are_bounded_by_bytes_and_one_too_big_is_not_kept() -> None:
    clock = FakeClock(1000.0)
    kept = cache(clock, usage_cache_max_bytes=4096)
    keys = [key_for(("Authorization", f"Bearer {n}")) for n in range(3)]
    body = b"x" * 1500
    for key in keys:
        assert kept.put(key, answer(body))
    assert kept.size_bytes <= 4096
    assert len(kept) == 2 and kept.fresh(keys[0]) is None
    assert not kept.put(keys[0], answer(b"x" * 5000))
    assert kept.size_bytes <= 4096


def test_the_per_entry_cap_holds_whatever_the_total() -> None:
    clock = FakeClock(1000.0)
    kept = cache(clock, usage_cache_max_bytes=64 * 1024 * 1024)
    key = key_for(("Authorization", "Bearer one"))
    assert not kept.put(key, answer(b"x" * (MAX_CACHE_ENTRY_BYTES + 1)))
    assert kept.put(key, answer(b"x" * MAX_CACHE_ENTRY_BYTES))


def test_a_capture_keeps_a_whole_answer_within_its_limit() -> None:
    capture = Capture(limit=10)
    capture.start(200, "OK", [("Content-Type", "application/json")])
    capture.feed(b"01234")
    assert capture.answer(5.0) is None  # not relayed to its end yet
    capture.feed(b"56789")
    capture.complete = True
    kept = capture.answer(5.0)
    assert kept is not None and kept.body == b"0123456789" and kept.received_at == 5.0
    assert kept.header("content-type") == "application/json"
    over = Capture(limit=4)
    over.start(429, "Too Many Requests", [("Retry-After", "0")])
    over.feed(b"12345")
    over.complete = True
    assert over.answer(5.0) is None and over.status == 429


async def test_waiters_get_the_flights_answer_and_only_200s_are_kept() -> None:
    clock = FakeClock(1000.0)
    kept = cache(clock)
    key = key_for(("Authorization", "Bearer one"))
    flight = kept.take_off(key)
    assert kept.flight(key) is flight
    waiting = [asyncio.create_task(flight.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert kept.waiting() == 3
    limited = answer(b"{}", status=429)
    kept.land(key, flight, limited, store=True)
    assert await asyncio.gather(*waiting) == [limited] * 3
    assert kept.flight(key) is None and kept.fresh(key) is None
    second = kept.take_off(key)
    kept.land(key, second, answer(), store=True)
    assert kept.fresh(key) is not None
