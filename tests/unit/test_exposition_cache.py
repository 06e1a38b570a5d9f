"""The exposition's block cache. A scrape reuses the text of every block of orgs that did
not change, and each change that alters `/metrics` shows at the next scrape exactly as a
render from scratch shows it: the cached text is compared with a fresh render after
every kind of change the daemon makes to the store or to a credential."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor import exposition as exposition_module
from monitor.exposition import BLOCK_ORGS, Rendered, UsageExposition
from monitor.state import OrgState, PollResult, UsageStore
from monitor.targets import OrgTarget, configured_targets
from monitor.usage import ExtraUsage, UsageSnapshot, UsageWindow
from tests.support.config import make_config
from tests.support.reference_exposition import FakeAccount

NOW = 1_800_000_000.0
ORGS = 2 * BLOCK_ORGS + 50  # three blocks, the last one partly full
MIDDLE = BLOCK_ORGS + 7  # an org of the second block


def org_uuid(index: int) -> str:
    return f"00000000-0000-4000-8000-{index:012d}"


def targets(count: int = ORGS, renamed: dict[int, str] | None = None) -> list[OrgTarget]:
    """`count` configured orgs named org0, org1...; `renamed` gives some another name."""
    names = {n: f"org{n}" for n in range(count)} | (renamed or {})
    orgs = [{"uuid": org_uuid(n), "name": names[n], "token_env": "TOKEN_A"} for n in range(count)]
    return configured_targets(make_config("http://upstream.test", orgs))


def state_of(store: UsageStore, index: int) -> OrgState:
    state = store.get(org_uuid(index))
    assert state is not None
    return state


def snapshot(utilization: float, resets_at: float = NOW + 3600) -> UsageSnapshot:
    return UsageSnapshot(
        windows=(UsageWindow("five_hour", utilization, resets_at),),
        extra=ExtraUsage(is_enabled=True, monthly_limit=5000.0, used_credits=12.0),
    )


@pytest.fixture
def store() -> UsageStore:
    """Every org polled once, the scheduler's next time set."""
    store = UsageStore(clock=lambda: NOW + 30)
    store.set_targets(targets())
    for n in range(ORGS):
        store.record_success(org_uuid(n), snapshot(n / 1000), end=NOW, duration=0.1)
        store.set_next_poll(org_uuid(n), NOW + 60)
    return store


def text(rendered: Rendered, openmetrics: bool = False) -> str:
    return b"".join(rendered.pieces(openmetrics)).decode()


async def fresh(store: UsageStore, accounts: list[FakeAccount] | None = None) -> Rendered:
    """What a render from scratch shows."""
    return await UsageExposition(store, lambda: accounts or []).render()


def count_block_renders(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many orgs each block render of this test rendered, in order."""
    calls: list[int] = []
    render_block = exposition_module.render_block

    def counting(states: Any) -> tuple[bytes, ...]:
        calls.append(len(states))
        return render_block(states)

    monkeypatch.setattr(exposition_module, "render_block", counting)
    return calls


async def test_a_scrape_with_nothing_new_reuses_every_block(
    store: UsageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    exposition = UsageExposition(store)
    first = await exposition.render()
    renders = count_block_renders(monkeypatch)
    again = await exposition.render()
    assert renders == []
    assert again.key == first.key
    assert all(a is b for a, b in zip(again.pieces(), first.pieces(), strict=True))
    assert text(again) == text(await fresh(store))


async def test_one_changed_org_re_renders_only_its_block(
    store: UsageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    exposition = UsageExposition(store)
    before = await exposition.render()
    renders = count_block_renders(monkeypatch)
    store.record_success(org_uuid(MIDDLE), snapshot(0.99), end=NOW + 60, duration=0.2)
    after = await exposition.render()
    assert renders == [BLOCK_ORGS]
    assert after.key != before.key
    assert text(after) == text(await fresh(store))


# Each change the daemon makes to the store, as the poller, the proxy's passive refresh,
# the scheduler or a config reload makes it.
Change = Callable[[UsageStore], object]
CHANGES: dict[str, Change] = {
    "a poll with a new answer": lambda store: store.record_success(
        org_uuid(MIDDLE), snapshot(0.75), end=NOW + 60, duration=0.3
    ),
    "a poll with the same answer": lambda store: store.record_success(
        org_uuid(MIDDLE), snapshot(MIDDLE / 1000), end=NOW + 60, duration=0.1
    ),
    "a failed poll": lambda store: store.record_failure(
        org_uuid(MIDDLE), PollResult.RATE_LIMITED, "HTTP 429", end=NOW + 60, duration=0.05
    ),
    "an answer the proxy relayed": lambda store: store.record_relayed(
        org_uuid(MIDDLE), snapshot(0.5)
    ),
    "a window that resets": lambda store: store.record_success(
        org_uuid(MIDDLE), snapshot(0.0, resets_at=NOW + 5 * 3600), end=NOW + 3600, duration=0.1
    ),
    "the next poll moved": lambda store: store.set_next_poll(org_uuid(MIDDLE), NOW + 120),
    "a reload that renames an org": lambda store: store.set_targets(
        targets(renamed={MIDDLE: 'renamed "org"'})
    ),
    "a reload that removes the first org": lambda store: store.set_targets(targets()[1:]),
    "a reload that removes the last org": lambda store: store.set_targets(targets()[:-1]),
    "a reload that adds an org": lambda store: store.set_targets(targets(ORGS + 1)),
    "a reload that removes a whole block": lambda store: store.set_targets(
        targets()[: 2 * BLOCK_ORGS]
    ),
    "a reload that removes every org": lambda store: store.set_targets([]),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
async def test_every_change_shows_at_the_next_scrape_as_a_fresh_render_shows_it(
    store: UsageStore, change: Change
) -> None:
    exposition = UsageExposition(store)
    before = await exposition.render()
    change(store)
    after = await exposition.render()
    expected = await fresh(store)
    assert text(after) != text(before)
    assert after.key != before.key
    for openmetrics in (False, True):
        assert text(after, openmetrics) == text(expected, openmetrics)
    # and the next scrape, with nothing new, reuses that
    assert (await exposition.render()).key == after.key


async def test_orgs_removed_then_added_back_are_rendered_from_their_new_states(
    store: UsageStore,
) -> None:
    """The new states of re-added orgs can reach the version numbers the old ones had:
    a block is matched by the identity of its orgs' states, not only by versions."""
    exposition = UsageExposition(store)
    old = state_of(store, MIDDLE)
    await exposition.render()
    store.set_targets([])
    store.set_targets(targets())  # the same orgs, in the same order, each a new state
    for n in range(ORGS):
        store.record_failure(org_uuid(n), PollResult.TIMEOUT, "slow", end=NOW, duration=2.0)
        store.set_next_poll(org_uuid(n), NOW + 60)
    new = state_of(store, MIDDLE)
    assert new is not old
    assert new.version == old.version
    assert new.target.credential.version == old.target.credential.version
    after = text(await exposition.render())
    assert after == text(await fresh(store))
    assert f'claude_usage_up{{org="org{MIDDLE}",org_uuid="{org_uuid(MIDDLE)}"}} 0.0' in after


async def test_a_credential_re_read_from_its_file_shows_at_the_next_scrape(
    tmp_path: Path,
) -> None:
    """A re-read changes the credential, not the org's state: its own version counts."""
    token = tmp_path / "token"
    token.write_text("first-token\n", encoding="utf-8")
    orgs = [{"uuid": org_uuid(n), "name": f"org{n}", "token_file": str(token)} for n in range(3)]
    store = UsageStore()
    store.set_targets(configured_targets(make_config("http://upstream.test", orgs)))
    exposition = UsageExposition(store)
    before = text(await exposition.render())
    assert 'claude_usage_credential_reloads_total{org="org1"' in before

    credential = state_of(store, 1).target.credential
    token.write_text("second-token, a little longer\n", encoding="utf-8")
    await credential.refresh()
    assert credential.reloads["changed"] == 1
    changed = text(await exposition.render())
    assert changed != before
    assert changed == text(await fresh(store))

    token.unlink()  # a failed re-read is counted too
    await credential.refresh()
    failed = text(await exposition.render())
    assert failed != changed
    assert failed == text(await fresh(store))


async def test_a_reload_that_gives_an_org_another_credential_shows_at_the_next_scrape(
    store: UsageStore, tmp_path: Path
) -> None:
    """Its state keeps its version numbers' order, but the credential is a new object
    with versions of its own: the state's version moves with the new target."""
    exposition = UsageExposition(store)
    before = await exposition.render()
    token = tmp_path / "token"
    token.write_text("a-token-from-a-file\n", encoding="utf-8")
    orgs = [{"uuid": org_uuid(n), "name": f"org{n}", "token_env": "TOKEN_A"} for n in range(ORGS)]
    orgs[MIDDLE] = {"uuid": org_uuid(MIDDLE), "name": f"org{MIDDLE}", "token_file": str(token)}
    store.set_targets(configured_targets(make_config("http://upstream.test", orgs)))
    after = await exposition.render()
    assert after.key != before.key
    assert f'claude_usage_credential_reloads_total{{org="org{MIDDLE}"' in text(after)
    assert text(after) == text(await fresh(store))


async def test_the_accounts_series_follow_the_accounts(store: UsageStore) -> None:
    """Discovery accounts are few and rendered at every scrape."""
    credential = state_of(store, 0).target.credential
    accounts = [FakeAccount("team", credential)]
    exposition = UsageExposition(store, lambda: accounts)
    before = await exposition.render()
    accounts[0].results[PollResult.SUCCESS] += 1
    counted = await exposition.render()
    assert counted.key != before.key
    assert text(counted) == text(await fresh(store, accounts))
    assert 'claude_usage_discoveries_total{account="team",result="success"} 1' in text(counted)
    accounts.append(dataclasses.replace(accounts[0], label="other"))
    assert text(await exposition.render()) == text(await fresh(store, accounts))
    accounts.clear()
    assert "discoveries_total{" not in text(await exposition.render())


async def test_scrapes_at_the_same_moment_render_once(
    store: UsageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    exposition = UsageExposition(store)
    renders = count_block_renders(monkeypatch)
    one, two = await asyncio.gather(exposition.render(), exposition.render())
    assert one is two
    assert renders == [BLOCK_ORGS, BLOCK_ORGS, ORGS - 2 * BLOCK_ORGS]
