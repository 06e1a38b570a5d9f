"""The hand-rendered usage families against prometheus_client's own rendering of the same
state, sample for sample, in the text format and in OpenMetrics (parsed with
prometheus_client's strict OpenMetrics parser)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as _parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text
from pydantic import SecretStr

from monitor.credentials import RELOAD_RESULTS, LiveCredential
from monitor.exposition import UsageExposition
from monitor.secret_sources import SecretReading, SecretSpec, SourceKind
from monitor.state import OrgState, PollResult, UsageStore
from monitor.targets import OrgTarget
from monitor.usage import ExtraUsage, UsageSnapshot, UsageWindow
from tests.support.reference_exposition import FakeAccount, ReferenceCollector

Parsed = tuple[set[tuple[str, str, str]], set[tuple[str, frozenset[tuple[str, str]], float]]]

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
maybe = st.one_of(st.none(), finite)
# Org names may hold anything a config or an upstream gives: quotes, backslashes, newlines.
label_text = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12)
window_name = st.from_regex(r"[A-Za-z0-9_.:-]{1,16}", fullmatch=True)


@st.composite
def credentials(draw: st.DrawFn) -> LiveCredential:
    source: SourceKind = draw(st.sampled_from(["env", "file"]))
    spec = SecretSpec("bearer", source, f"token_{source}", env="T", path=Path("/t"))
    reading = SecretReading(SecretStr("not-a-real-token"), draw(maybe))
    credential = LiveCredential(spec, reading, label="org=x")
    for result in RELOAD_RESULTS:
        credential.reloads[result] = draw(st.integers(0, 10**6))
    return credential


@st.composite
def org_states(draw: st.DrawFn, index: int) -> OrgState:
    target = OrgTarget(
        uuid=f"00000000-0000-4000-8000-{index:012d}",
        name=draw(label_text),
        base_url="http://127.0.0.1:9",
        usage_path="/u/{org_uuid}",
        credential=draw(credentials()),
        origin=draw(st.sampled_from(["config", "account team"])),
    )
    state = OrgState(target)
    if draw(st.booleans()):
        windows = draw(
            st.lists(st.tuples(window_name, maybe, maybe), max_size=4, unique_by=lambda w: w[0])
        )
        extra = draw(
            st.one_of(
                st.none(),
                st.builds(ExtraUsage, st.one_of(st.none(), st.booleans()), maybe, maybe),
            )
        )
        dropped = tuple(draw(st.lists(window_name, max_size=3)))
        state.snapshot = UsageSnapshot(tuple(UsageWindow(*w) for w in windows), extra, dropped)
    if draw(st.booleans()):
        state.last_result = draw(st.sampled_from(list(PollResult)))
        state.last_success, state.duration = draw(maybe), draw(maybe)
    state.next_poll = draw(maybe)
    for result in PollResult:
        state.results[result] = draw(st.integers(0, 10**9))
    return state


@st.composite
def stores(draw: st.DrawFn) -> tuple[UsageStore, list[FakeAccount]]:
    store = UsageStore()
    states = [draw(org_states(i)) for i in range(draw(st.integers(0, 4)))]
    store.set_targets(s.target for s in states)
    for state in states:
        mine = store.get(state.target.uuid)
        assert mine is not None
        vars(mine).update({k: v for k, v in vars(state).items() if k != "target"})
    # Account names are unique (the config refuses two alike), as org uuids are.
    labels = draw(st.lists(label_text, max_size=2, unique=True))
    accounts = [FakeAccount(label, draw(credentials())) for label in labels]
    for account in accounts:
        for result in PollResult:
            account.results[result] = draw(st.integers(0, 1000))
    return store, accounts


def parse_openmetrics(text: str) -> Any:
    # prometheus_client leaves its OpenMetrics parser unannotated.
    return _parse_openmetrics(text)  # type: ignore[no-untyped-call]


def parsed(families: Any) -> Parsed:
    headers, samples = set(), set()
    for family in families:
        headers.add((family.name, family.type, family.documentation))
        for sample in family.samples:
            samples.add((sample.name, frozenset(sample.labels.items()), float(sample.value)))
    return headers, samples


def ours(store: UsageStore, accounts: list[FakeAccount], openmetrics_format: bool) -> str:
    exposition = UsageExposition(store, lambda: accounts)
    text = b"".join(asyncio.run(exposition.render_chunks(openmetrics_format))).decode()
    return text + "# EOF\n" if openmetrics_format else text


def reference(store: UsageStore, accounts: list[FakeAccount], openmetrics_format: bool) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReferenceCollector(store, accounts))
    render = openmetrics.generate_latest if openmetrics_format else generate_latest
    return bytes(render(registry)).decode()


@settings(max_examples=60, deadline=None)
@given(stores())
def test_the_text_format_is_what_prometheus_client_renders(
    state: tuple[UsageStore, list[FakeAccount]],
) -> None:
    store, accounts = state
    assert parsed(parse_text(ours(store, accounts, False))) == parsed(
        parse_text(reference(store, accounts, False))
    )


@settings(max_examples=60, deadline=None)
@given(stores())
def test_openmetrics_is_what_prometheus_client_renders(
    state: tuple[UsageStore, list[FakeAccount]],
) -> None:
    store, accounts = state
    assert parsed(parse_openmetrics(ours(store, accounts, True))) == parsed(
        parse_openmetrics(reference(store, accounts, True))
    )
