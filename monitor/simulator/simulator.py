"""The simulator's state and the hooks tests and the demo drive it with."""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from monitor.simulator.errors import ApiError
from monitor.simulator.faults import GLOBAL, Fault, FaultTable
from monitor.simulator.model import (
    PLAN_CAPABILITIES,
    IssuedToken,
    SimAccount,
    SimOrg,
    SimProject,
    authenticate,
    default_projects,
    stable_uuid,
)
from monitor.simulator.shapes import (
    SHAPES,
    JSONObject,
    JSONValue,
    Shape,
    default_extra,
    default_windows,
    render_usage,
)
from monitor.simulator.windows import (
    ExtraSpec,
    WindowSpec,
    override_window,
    read_window,
    start_window,
    update_extra,
)

Clock = Callable[[], float]
# Every token the simulator issues starts so, so tests can scan logs for any of them.
ISSUED_TOKEN_PREFIX = "sim-issued-"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the simulated upstream received it."""

    method: str
    path: str
    query_string: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    org_uuid: str | None
    time: float

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)


class Simulator:
    """A fake Claude upstream: orgs whose usage climbs with `clock`, accounts, faults.

    All times come from `clock` (Unix seconds), so a test can drive hours of usage by
    moving a number. `simulator_app(sim)` builds the aiohttp app that serves this state;
    the same object keeps being the place to change it while the app runs.
    """

    def __init__(self, clock: Clock = time.time, *, max_requests: int = 10_000) -> None:
        self.clock = clock
        self.orgs: dict[str, SimOrg] = {}
        self.accounts: dict[str, SimAccount] = {}
        self.faults = FaultTable()
        self.issued: dict[str, IssuedToken] = {}
        self.requests: deque[RecordedRequest] = deque(maxlen=max_requests)

    # Orgs and usage

    def add_org(
        self,
        uuid: str,
        name: str,
        *,
        plan: str = "team",
        shape: Shape = "seed",
        windows: Mapping[str, WindowSpec] | None = None,
        extra: ExtraSpec | Literal["default"] | None = "default",
        time_scale: float = 1.0,
        projects: Iterable[SimProject] | None = None,
        capabilities: Iterable[str] | None = None,
    ) -> SimOrg:
        """Add (or replace) an org.

        `windows` defaults to the shape's usual windows at real-time periods;
        `time_scale` makes every window and the extra-usage spend run that many times
        faster (60 turns a five-hour window into five minutes). `extra="default"` picks
        the shape's usual extra usage; `None` renders `extra_usage: null`. A given
        `ExtraSpec` is re-anchored at the moment of adding, so its `anchor` is ignored.
        """
        if shape not in SHAPES:
            raise ValueError(f"unknown shape {shape!r}, expected one of {', '.join(SHAPES)}")
        now = self.clock()
        specs = default_windows(shape) if windows is None else dict(windows)
        extra_usage = default_extra(shape) if extra == "default" else extra
        if extra_usage is not None:
            extra_usage = ExtraSpec(
                is_enabled=extra_usage.is_enabled,
                monthly_limit=extra_usage.monthly_limit,
                used_credits=extra_usage.used_credits,
                rate=extra_usage.rate * time_scale,
                anchor=now,
            )
        org = SimOrg(
            uuid=uuid,
            name=name,
            plan=plan,
            shape=shape,
            windows={
                key: start_window(spec.scaled(time_scale), now) for key, spec in specs.items()
            },
            extra=extra_usage,
            created_at=now,
            projects=(
                default_projects(uuid, now)
                if projects is None
                else {project.uuid: project for project in projects}
            ),
            capabilities=tuple(
                PLAN_CAPABILITIES.get(plan, ("chat",)) if capabilities is None else capabilities
            ),
        )
        self.orgs[uuid] = org
        return org

    def remove_org(self, uuid: str) -> None:
        del self.orgs[uuid]
        self.faults.clear(uuid)

    def set_utilization(self, org_uuid: str, window: str, percent: float) -> None:
        """Make `window` read `percent` now; it keeps climbing from there until it resets."""
        org = self.orgs[org_uuid]
        if window not in org.windows:
            raise KeyError(f"org {org_uuid} has no window {window!r}")
        org.windows[window] = override_window(org.windows[window], percent, self.clock())

    def set_extra(
        self,
        org_uuid: str,
        *,
        used_credits: int | None = None,
        monthly_limit: int | None = None,
        is_enabled: bool | None = None,
        rate: float | None = None,
    ) -> None:
        """Change extra usage from now on; fields left as None keep their value."""
        org = self.orgs[org_uuid]
        current = org.extra or ExtraSpec(is_enabled=False, monthly_limit=None, used_credits=0)
        org.extra = update_extra(
            current,
            self.clock(),
            used_credits=used_credits,
            monthly_limit=monthly_limit,
            is_enabled=is_enabled,
            rate=rate,
        )

    def usage(self, org_uuid: str) -> JSONObject:
        org = self.orgs[org_uuid]
        return render_usage(org.shape, org.windows, org.extra, self.clock())

    # Accounts

    def add_account(
        self,
        *,
        org_uuids: Iterable[str],
        token: str | None = None,
        session_key: str | None = None,
        expired: bool = False,
        uuid: str | None = None,
        issued_tokens_only: bool = False,
    ) -> str:
        """Register a credential (bearer token and/or sessionKey) for these orgs, or, with
        `issued_tokens_only`, an account reached only with tokens from `issue_token`."""
        if not token and not session_key and not issued_tokens_only:
            raise ValueError("an account needs a token or a session_key (or issued tokens)")
        members = tuple(org_uuids)
        account_uuid = uuid or stable_uuid("account", token or "", session_key or "", *members)
        self.accounts[account_uuid] = SimAccount(
            uuid=account_uuid,
            org_uuids=members,
            token=token or None,
            session_key=session_key or None,
            expired=expired,
        )
        return account_uuid

    def issue_token(self, account_uuid: str, lifetime: float) -> IssuedToken:
        """A new bearer token for the account, valid for `lifetime` seconds from now (then
        401 `token_expired`); tokens issued before keep working until their own expiry."""
        if account_uuid not in self.accounts:
            raise KeyError(f"unknown account {account_uuid}")
        issued = IssuedToken(
            f"{ISSUED_TOKEN_PREFIX}{secrets.token_hex(16)}", account_uuid, self.clock() + lifetime
        )
        self.issued[issued.token] = issued
        return issued

    def authenticate(self, headers: Mapping[str, str]) -> SimAccount | ApiError:
        """The account a request's credential belongs to, or the upstream's refusal."""
        return authenticate(headers, self.accounts.values(), self.issued, self.clock())

    def member_orgs(self, account: SimAccount) -> list[SimOrg]:
        return [self.orgs[uuid] for uuid in account.org_uuids if uuid in self.orgs]

    def resolve_org(self, org_uuid: str, account: SimAccount) -> SimOrg | ApiError:
        org = self.orgs.get(org_uuid)
        if org is None:
            return ApiError.for_status(404, "Organization not found")
        if org_uuid not in account.org_uuids:
            return ApiError.for_status(403, "You do not have access to this organization")
        return org

    def token_org(self, account: SimAccount) -> SimOrg | ApiError:
        """The org an OAuth token acts for (its account's first org): `/api/oauth/*`."""
        orgs = self.member_orgs(account)
        if not orgs:
            return ApiError.for_status(404, "Organization not found")
        return orgs[0]

    def oauth_org_uuid(self, headers: Mapping[str, str]) -> str | None:
        """The org a request to `/api/oauth/*` is about, for faults and the request log
        (None when its credential is not accepted)."""
        account = self.authenticate(headers)
        if isinstance(account, ApiError):
            return None
        org = self.token_org(account)
        return None if isinstance(org, ApiError) else org.uuid

    # Faults

    def set_fault(self, key: str, fault: Fault) -> None:
        """Arm `fault` for one org uuid, or for every route with key `"*"`."""
        if key != GLOBAL and key not in self.orgs:
            raise KeyError(f"unknown org {key}")
        self.faults.set(key, fault)

    def clear_fault(self, key: str) -> bool:
        return self.faults.clear(key)

    # Request log

    def record(self, request: RecordedRequest) -> None:
        self.requests.append(request)

    def requests_for(self, org_uuid: str | None) -> list[RecordedRequest]:
        """Requests that named this org, or (`/api/oauth/*`) whose token acts for it; None:
        the discovery routes and strays."""
        return [request for request in self.requests if request.org_uuid == org_uuid]

    def clear_requests(self) -> None:
        self.requests.clear()

    def state(self) -> JSONObject:
        """Everything a person debugging a demo wants to see, secrets left out."""
        now = self.clock()
        armed = self.faults.snapshot()
        orgs: list[JSONValue] = []
        for org in self.orgs.values():
            windows: JSONObject = {}
            for key, window in org.windows.items():
                reading = read_window(window, now)
                windows[key] = {
                    "utilization": reading.utilization,
                    "resets_at": reading.resets_at,
                    "period": window.spec.period,
                    "rate": window.spec.rate,
                    "cap": window.spec.cap,
                }
            orgs.append(
                {
                    "uuid": org.uuid,
                    "name": org.name,
                    "plan": org.plan,
                    "shape": org.shape,
                    "windows": windows,
                    "usage": render_usage(org.shape, org.windows, org.extra, now),
                    "projects": list(org.projects),
                }
            )
        faults: JSONObject = {
            key: {"fault": dict(item.fault.to_json()), "remaining": item.remaining}
            for key, item in armed.items()
        }
        accounts: list[JSONValue] = [
            {
                "uuid": account.uuid,
                "org_uuids": list(account.org_uuids),
                "credential": "token" if account.token else "session_key",
                "expired": account.expired,
            }
            for account in self.accounts.values()
        ]
        return {
            "now": now,
            "orgs": orgs,
            "faults": faults,
            "accounts": accounts,
            "requests": len(self.requests),
        }
