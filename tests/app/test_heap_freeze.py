"""When the daemon leaves its long-lived heap out of garbage collections: once start-up is
done, and each time every org has had its first poll (at start, and after a reload adds
orgs). The app is told through `freeze_heap`; here a recorder stands in for `gc.freeze`."""

from __future__ import annotations

import gc

from monitor.app import reload_config
from monitor.simulator import Fault
from tests.conftest import Client, MakeClient
from tests.support.config import ORGS_AB, ORGS_ABC, make_config
from tests.support.jobs import ManualJobs
from tests.support.upstream import ORG_B, Upstream

ORG_D = "0d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"


async def polled_app(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream
) -> tuple[Client, list[str]]:
    """Orgs A and B polled once, then org C added by a reload; the freezes since."""
    freezes: list[str] = []
    client = await driven(make_config(upstream.url, ORGS_AB), freeze_heap=freezes.append)
    await jobs.run_due()
    assert reload_config(client.app, lambda: make_config(upstream.url, ORGS_ABC))
    freezes.clear()
    return client, freezes


async def test_start_up_then_every_org_polled_once(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream
) -> None:
    freezes: list[str] = []
    await driven(make_config(upstream.url, ORGS_AB), freeze_heap=freezes.append)
    assert freezes == ["start-up"]

    assert await jobs.run_due() == 2
    assert freezes == ["start-up", "every org polled"]

    await jobs.advance_until(lambda: len(upstream.sim.requests_for(ORG_B)) >= 3, "more polls")
    assert freezes == ["start-up", "every org polled"]  # later polls change nothing


async def test_a_failed_first_poll_counts_as_polled(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream
) -> None:
    upstream.sim.set_fault(ORG_B, Fault(status=500))
    freezes: list[str] = []
    await driven(make_config(upstream.url, ORGS_AB), freeze_heap=freezes.append)
    await jobs.run_due()
    assert freezes == ["start-up", "every org polled"]


async def test_orgs_added_by_a_reload_are_waited_for_again(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream
) -> None:
    _, freezes = await polled_app(driven, jobs, upstream)
    assert freezes == []  # org C has not been polled yet
    await jobs.run_due()  # org C's first poll
    assert freezes == ["every org polled"]


async def test_an_unpolled_org_removed_by_a_reload_is_not_waited_for(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream
) -> None:
    client, freezes = await polled_app(driven, jobs, upstream)
    # org C leaves before its first poll: nothing is left to wait for
    assert reload_config(client.app, lambda: make_config(upstream.url, ORGS_AB))
    assert freezes == ["every org polled"]


async def test_without_a_freezer_nothing_is_frozen(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream
) -> None:
    # the test process's own heap is never frozen by an app built without one
    before = gc.get_freeze_count()
    await driven(make_config(upstream.url, ORGS_AB))
    await jobs.run_due()
    assert gc.get_freeze_count() == before


async def test_an_unpolled_org_swapped_for_another_is_still_waited_for(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream
) -> None:
    client, freezes = await polled_app(driven, jobs, upstream)
    # org C leaves before its first poll as org D arrives: D is still to be polled
    org_d = {"uuid": ORG_D, "name": "delta", "token_env": "TOKEN_C"}
    assert reload_config(client.app, lambda: make_config(upstream.url, [*ORGS_AB, org_d]))
    assert freezes == []
    await jobs.run_due()  # org D's first poll (the simulator does not know it: a failure)
    assert freezes == ["every org polled"]
