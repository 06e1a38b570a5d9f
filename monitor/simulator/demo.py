"""A ready-made simulator for `monitor demo`: a handful of orgs whose usage moves fast."""

from __future__ import annotations

import time
from dataclasses import dataclass

from monitor.simulator.faults import Fault
from monitor.simulator.shapes import Shape
from monitor.simulator.simulator import Clock, Simulator
from monitor.simulator.windows import DAY, HOUR, ExtraSpec, WindowSpec

MINUTE = 60.0


@dataclass(frozen=True)
class DemoOrg:
    """One org the daemon should be configured to poll with `token` as its Bearer token."""

    name: str
    uuid: str
    plan: str
    shape: Shape
    token: str


@dataclass(frozen=True)
class DemoCredentials:
    """What to put in the daemon's config to watch the demo simulator.

    `orgs` are `[[orgs]]` entries. `account_token` is an `[[accounts]]` credential whose
    `/api/bootstrap` lists `discovered_org_uuids`: one org also configured directly
    (so it must be polled once) and one reachable only through discovery.
    """

    orgs: tuple[DemoOrg, ...]
    account_token: str
    discovered_org_uuids: tuple[str, ...]
    renewed: RenewedOrg

    def token_for(self, name: str) -> str:
        return next(org.token for org in self.orgs if org.name == name)


ACME = DemoOrg("acme", "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b", "team", "seed", "sim-token-acme")
GLOBEX = DemoOrg(
    "globex", "3c9e1f52-8a47-4d6b-b1e0-7f2a9c4d5e63", "max", "oauth_2025", "sim-token-globex"
)
INITECH = DemoOrg(
    "initech",
    "b84d2e17-5c3a-4f98-a6e1-0d7c3b9f2a45",
    "enterprise",
    "limits_2026",
    "sim-token-initech",
)
HOOLI = DemoOrg(
    "hooli", "e2a7c9d4-1b6f-4e38-9c05-8f3d6a2b7e19", "pro", "oauth_2025", "sim-token-hooli"
)
SOYLENT = DemoOrg(
    "soylent", "7d5b3e91-0c2a-4f67-b8d4-1e9a6c3f5b27", "team", "seed", "sim-token-soylent"
)
UMBRELLA_UUID = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"


@dataclass(frozen=True)
class RenewedOrg:
    """An org whose only credentials are short-lived tokens from `Simulator.issue_token`,
    as a Claude Code OAuth token is: the demo keeps renewing one in a credentials file."""

    name: str
    uuid: str
    account_uuid: str


WAYNE = RenewedOrg(
    "wayne", "c7e4a1d9-3f62-4b85-9e07-2d8b6a1f4c30", "e9b1c5a3-7d24-4f68-b0c2-5a8e1d3f7b46"
)
# Made-up credentials the simulator alone accepts; nothing secret about them.
ACCOUNT_TOKEN = "sim-token-account"  # noqa: S105


def demo_simulator(clock: Clock = time.time) -> tuple[Simulator, DemoCredentials]:
    """A simulator with six configured orgs and one discovered one.

    - acme (team, seed shape): `claude_code` fills to 85% and resets every 5 minutes;
      `projects` every 15 minutes (monitor learns both lengths from their resets);
      extra usage slowly spends toward 50.00 USD.
    - globex (max, oauth_2025), ahead of pace: `five_hour` is 45% through at 63%, 1.4
      times an even pace, so it reaches 100% about 1h 20m before its reset; `seven_day`
      is on pace to end at 70%; `seven_day_opus` is unused (`resets_at: null`) until
      someone sets it.
    - initech (enterprise, limits_2026), behind pace: `five_hour` is half way at 30%
      (0.6x), `seven_day` at 37.5% (0.75x); the codename window `tangelo` overshoots to
      110% every 4 minutes (uncapped, for threshold alerts); extra usage starts at
      83.00 of 100.00 USD and reaches its limit after about 10 minutes.
    - hooli (pro): its token is expired, every poll gets 401.
    - soylent (team): permanently rate limited, 429 with `retry-after: 0`.
    - umbrella (pro, managed_seat, every window null): only in `account_token`'s
      memberships, together with acme, for discovery.
    - wayne (max, oauth_2025): reachable only with tokens the simulator issues, which
      expire; the demo renews one in a credentials file every minute.

    Windows with a documented length (`five_hour`, `seven_day*`) run at that length,
    since monitor computes their pace from it; the others run in minutes, so a watcher
    sees climbs, resets and lengths being learned live.
    """
    sim = Simulator(clock)
    sim.add_org(
        ACME.uuid,
        ACME.name,
        plan=ACME.plan,
        shape=ACME.shape,
        windows={
            "claude_code": WindowSpec.filling(5 * MINUTE, 85.0, phase=0.4),
            "projects": WindowSpec.filling(15 * MINUTE, 60.0, phase=0.1),
        },
        extra=ExtraSpec(is_enabled=True, monthly_limit=5000, used_credits=1234, rate=0.5),
    )
    sim.add_org(
        GLOBEX.uuid,
        GLOBEX.name,
        plan=GLOBEX.plan,
        shape=GLOBEX.shape,
        windows={
            "five_hour": WindowSpec.filling(5 * HOUR, 140.0, phase=0.45),
            "seven_day": WindowSpec.filling(7 * DAY, 70.0, phase=0.2),
            "seven_day_opus": WindowSpec.unused(7 * DAY, rate=30.0 / (7 * DAY)),
        },
    )
    sim.add_org(
        INITECH.uuid,
        INITECH.name,
        plan=INITECH.plan,
        shape=INITECH.shape,
        windows={
            "five_hour": WindowSpec.filling(5 * HOUR, 60.0, phase=0.5),
            "seven_day": WindowSpec.filling(7 * DAY, 75.0, phase=0.5),
            "seven_day_cowork": WindowSpec.filling(7 * DAY, 20.0, phase=0.5),
            "tangelo": WindowSpec.filling(4 * MINUTE, 110.0, phase=0.6, cap=None),
        },
        extra=ExtraSpec(is_enabled=True, monthly_limit=10000, used_credits=8300, rate=2.8),
    )
    sim.add_org(HOOLI.uuid, HOOLI.name, plan=HOOLI.plan, shape=HOOLI.shape)
    sim.add_org(SOYLENT.uuid, SOYLENT.name, plan=SOYLENT.plan, shape=SOYLENT.shape)
    sim.add_org(UMBRELLA_UUID, "umbrella", plan="pro", shape="managed_seat")
    sim.add_org(WAYNE.uuid, WAYNE.name, plan="max", shape="oauth_2025")
    sim.add_account(org_uuids=[WAYNE.uuid], uuid=WAYNE.account_uuid, issued_tokens_only=True)

    for org in (ACME, GLOBEX, INITECH, SOYLENT):
        sim.add_account(token=org.token, org_uuids=[org.uuid])
    sim.add_account(token=HOOLI.token, org_uuids=[HOOLI.uuid], expired=True)
    sim.add_account(token=ACCOUNT_TOKEN, org_uuids=[ACME.uuid, UMBRELLA_UUID])
    sim.set_fault(SOYLENT.uuid, Fault(status=429, retry_after="0"))

    credentials = DemoCredentials(
        orgs=(ACME, GLOBEX, INITECH, HOOLI, SOYLENT),
        account_token=ACCOUNT_TOKEN,
        discovered_org_uuids=(ACME.uuid, UMBRELLA_UUID),
        renewed=WAYNE,
    )
    return sim, credentials
