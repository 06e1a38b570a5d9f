"""`/_simulator/` routes: change a running simulator over HTTP (demo, benchmarks, curl)."""

from __future__ import annotations

import json
import math

from aiohttp import web

from monitor.simulator.errors import ApiError
from monitor.simulator.faults import GLOBAL, Fault, FaultError
from monitor.simulator.shapes import JSONValue
from monitor.simulator.simulator import Simulator

CONTROL_PREFIX = "/_simulator/"


class BadRequest(ValueError):
    """A control body that cannot be used; the message names the field."""


def _error(status: int, message: str) -> web.Response:
    error = ApiError.for_status(status, message)
    return web.Response(body=error.body(), status=status, content_type="application/json")


async def _json_body(request: web.Request) -> dict[str, object]:
    try:
        data = json.loads(await request.read())
    except ValueError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def parse_utilization(data: dict[str, object]) -> float:
    value = data.get("utilization")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest("utilization: required, must be a number")
    if not math.isfinite(value) or value < 0:
        raise BadRequest("utilization: must be a finite number >= 0")
    return float(value)


def parse_extra(data: dict[str, object]) -> tuple[int | None, int | None, bool | None]:
    unknown = sorted(set(data) - {"used_credits", "monthly_limit", "is_enabled"})
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field")
    used, limit, enabled = (
        data.get("used_credits"),
        data.get("monthly_limit"),
        data.get("is_enabled"),
    )
    for name, value in (("used_credits", used), ("monthly_limit", limit)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise BadRequest(f"{name}: must be an integer >= 0 (cents)")
    if enabled is not None and not isinstance(enabled, bool):
        raise BadRequest("is_enabled: must be true or false")
    return (
        used if isinstance(used, int) else None,
        limit if isinstance(limit, int) else None,
        enabled if isinstance(enabled, bool) else None,
    )


class ControlRoutes:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    async def state(self, request: web.Request) -> web.Response:
        return web.json_response(self.sim.state())

    async def put_fault(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if key != GLOBAL and key not in self.sim.orgs:
            return _error(404, f"unknown org {key}")
        try:
            fault = Fault.from_json(await _json_body(request))
        except (BadRequest, FaultError) as exc:
            return _error(400, str(exc))
        self.sim.set_fault(key, fault)
        return web.json_response({"key": key, "fault": dict(fault.to_json())})

    async def delete_fault(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        return web.json_response({"key": key, "cleared": self.sim.clear_fault(key)})

    async def put_usage(self, request: web.Request) -> web.Response:
        org_uuid, window = request.match_info["org_uuid"], request.match_info["window"]
        org = self.sim.orgs.get(org_uuid)
        if org is None:
            return _error(404, f"unknown org {org_uuid}")
        if window not in org.windows:
            return _error(404, f"org {org_uuid} has no window {window}")
        try:
            percent = parse_utilization(await _json_body(request))
        except BadRequest as exc:
            return _error(400, str(exc))
        self.sim.set_utilization(org_uuid, window, percent)
        return web.json_response({"org_uuid": org_uuid, "usage": self.sim.usage(org_uuid)})

    async def put_extra(self, request: web.Request) -> web.Response:
        org_uuid = request.match_info["org_uuid"]
        if org_uuid not in self.sim.orgs:
            return _error(404, f"unknown org {org_uuid}")
        try:
            used, limit, enabled = parse_extra(await _json_body(request))
        except BadRequest as exc:
            return _error(400, str(exc))
        self.sim.set_extra(org_uuid, used_credits=used, monthly_limit=limit, is_enabled=enabled)
        return web.json_response({"org_uuid": org_uuid, "usage": self.sim.usage(org_uuid)})

    async def get_requests(self, request: web.Request) -> web.Response:
        wanted = request.query.get("org_uuid")
        rows = self.sim.requests if wanted is None else self.sim.requests_for(wanted)
        listed: list[JSONValue] = [
            {
                "method": row.method,
                "path": row.path,
                "query_string": row.query_string,
                "org_uuid": row.org_uuid,
                "time": row.time,
            }
            for row in rows
        ]
        return web.json_response({"count": len(listed), "requests": listed})

    async def delete_requests(self, request: web.Request) -> web.Response:
        self.sim.clear_requests()
        return web.json_response({"cleared": True})


def add_control_routes(app: web.Application, sim: Simulator) -> None:
    routes = ControlRoutes(sim)
    base = CONTROL_PREFIX.rstrip("/")
    app.router.add_get(f"{base}/state", routes.state)
    app.router.add_put(f"{base}/faults/{{key}}", routes.put_fault)
    app.router.add_delete(f"{base}/faults/{{key}}", routes.delete_fault)
    app.router.add_put(f"{base}/orgs/{{org_uuid}}/usage/{{window}}", routes.put_usage)
    app.router.add_put(f"{base}/orgs/{{org_uuid}}/extra", routes.put_extra)
    app.router.add_get(f"{base}/requests", routes.get_requests)
    app.router.add_delete(f"{base}/requests", routes.delete_requests)
