"""The aiohttp app that serves a `Simulator` as if it were the upstream.

Every upstream request goes through one middleware that logs it, then acts out any
armed fault, before the handler checks credentials like the real API. The control
routes under `/_simulator/` bypass all three, so a test can always clear a fault.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from monitor.simulator.control import CONTROL_PREFIX, add_control_routes
from monitor.simulator.errors import ApiError
from monitor.simulator.faults import CLOUDFLARE_HTML, Fault
from monitor.simulator.model import (
    SimAccount,
    SimOrg,
    SimProject,
    account_json,
    docs_json,
    files_json,
    memory_json,
    organizations_json,
    parse_web_fetch,
    profile_json,
    project_json,
    url_allowed,
    web_fetch_json,
)
from monitor.simulator.shapes import JSONValue
from monitor.simulator.simulator import RecordedRequest, Simulator

SIMULATOR_KEY = web.AppKey("simulator", Simulator)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ORG = "/api/organizations/{org_uuid}"
OAUTH = "/api/oauth/"


def json_answer(data: JSONValue, status: int = 200) -> web.Response:
    response = web.json_response(data, status=status)
    # Negotiated from Accept-Encoding at send time, so proxies can be tested on gzip.
    response.enable_compression()
    return response


def error_answer(error: ApiError) -> web.Response:
    response = web.Response(
        body=error.body(),
        status=error.status,
        content_type="application/json",
        headers=dict(error.headers),
    )
    response.enable_compression()
    return response


def fault_answer(fault: Fault) -> web.Response:
    if fault.cloudflare:
        headers = {"Server": "cloudflare", "cf-mitigated": "challenge"}
        if fault.retry_after is not None:
            headers["Retry-After"] = fault.retry_after
        return web.Response(
            text=CLOUDFLARE_HTML, status=403, content_type="text/html", headers=headers
        )
    assert fault.status is not None  # fault_answer is only called for answering faults
    error = ApiError.for_status(fault.status)
    body = error.body() if fault.body is None else fault.body.encode()
    response = web.Response(body=body, status=fault.status)
    response.headers["Content-Type"] = fault.content_type
    if fault.retry_after is not None:
        response.headers["Retry-After"] = fault.retry_after
    return response


def drop_connection(request: web.Request) -> web.Response:
    if request.transport is not None:
        request.transport.abort()
    # Never written: the transport is gone, aiohttp just notes the disconnect.
    return web.Response(status=499)


async def truncated(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """Send `response`'s headers and half its body under a Content-Length for all of it."""
    body = response.body if isinstance(response, web.Response) else None
    payload = bytes(body) if isinstance(body, bytes | bytearray) else b""
    stream = web.StreamResponse(status=response.status, reason=response.reason)
    for name in ("Content-Type", "Retry-After"):
        if name in response.headers:
            stream.headers[name] = response.headers[name]
    stream.content_length = len(payload) + max(16, len(payload))
    await stream.prepare(request)
    await stream.write(payload[: len(payload) // 2])
    if request.transport is not None:
        request.transport.close()
    return stream


async def answer(handler: Handler, request: web.Request) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        # Router misses (unknown path, wrong method) in the upstream's JSON envelope.
        return error_answer(ApiError.for_status(exc.status, exc.reason))


@web.middleware
async def upstream_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(CONTROL_PREFIX):
        return await handler(request)
    sim = request.app[SIMULATOR_KEY]
    org_uuid = request.match_info.get("org_uuid")
    if request.path.startswith(OAUTH):  # about the org the token acts for
        org_uuid = sim.oauth_org_uuid(request.headers)
    sim.record(
        RecordedRequest(
            method=request.method,
            path=request.path,
            query_string=request.query_string,
            headers=tuple(request.headers.items()),
            body=await request.read(),
            org_uuid=org_uuid,
            time=sim.clock(),
        )
    )
    fault = sim.faults.take(org_uuid)
    if fault is None:
        return await answer(handler, request)
    if fault.delay > 0:
        await asyncio.sleep(fault.delay)
    if fault.drop:
        return drop_connection(request)
    if fault.cloudflare or fault.status is not None:
        response: web.StreamResponse = fault_answer(fault)
    else:
        response = await answer(handler, request)
    if fault.truncate:
        return await truncated(request, response)
    return response


def _org_for(request: web.Request) -> SimOrg | ApiError:
    sim = request.app[SIMULATOR_KEY]
    account = sim.authenticate(request.headers)
    if isinstance(account, ApiError):
        return account
    return sim.resolve_org(request.match_info["org_uuid"], account)


def _project_for(request: web.Request) -> SimProject | ApiError:
    org = _org_for(request)
    if isinstance(org, ApiError):
        return org
    project = org.projects.get(request.match_info["project_id"])
    if project is None:
        return ApiError.for_status(404, "Project not found")
    return project


async def usage(request: web.Request) -> web.Response:
    org = _org_for(request)
    if isinstance(org, ApiError):
        return error_answer(org)
    return json_answer(request.app[SIMULATOR_KEY].usage(org.uuid))


async def project(request: web.Request) -> web.Response:
    found = _project_for(request)
    return error_answer(found) if isinstance(found, ApiError) else json_answer(project_json(found))


async def project_docs(request: web.Request) -> web.Response:
    found = _project_for(request)
    return error_answer(found) if isinstance(found, ApiError) else json_answer(docs_json(found))


async def project_files(request: web.Request) -> web.Response:
    found = _project_for(request)
    return error_answer(found) if isinstance(found, ApiError) else json_answer(files_json(found))


async def memory(request: web.Request) -> web.Response:
    org = _org_for(request)
    if isinstance(org, ApiError):
        return error_answer(org)
    raw = request.query.get("project_uuid", "")
    try:
        project_uuid = str(uuid.UUID(raw))
    except ValueError:
        return error_answer(
            ApiError.for_status(400, "project_uuid: required, must be a project UUID")
        )
    found = org.projects.get(project_uuid)
    if found is None:
        return error_answer(ApiError.for_status(404, "Project not found"))
    return json_answer(memory_json(found))


async def web_fetch(request: web.Request) -> web.Response:
    org = _org_for(request)
    if isinstance(org, ApiError):
        return error_answer(org)
    try:
        url, allowed_urls = parse_web_fetch(json.loads(await request.read()))
    except ValueError as exc:  # json.JSONDecodeError is a ValueError too
        return error_answer(ApiError.for_status(400, str(exc)))
    if not url_allowed(url, allowed_urls):
        return error_answer(ApiError(403, "permission_error", "url_not_allowed"))
    return json_answer(web_fetch_json(url))


def _token_org(request: web.Request) -> tuple[SimAccount, SimOrg] | ApiError:
    sim = request.app[SIMULATOR_KEY]
    account = sim.authenticate(request.headers)
    if isinstance(account, ApiError):
        return account
    org = sim.token_org(account)
    return org if isinstance(org, ApiError) else (account, org)


async def oauth_usage(request: web.Request) -> web.Response:
    """`/api/oauth/usage`: the usage of the org the token acts for."""
    found = _token_org(request)
    if isinstance(found, ApiError):
        return error_answer(found)
    return json_answer(request.app[SIMULATOR_KEY].usage(found[1].uuid))


async def oauth_profile(request: web.Request) -> web.Response:
    found = _token_org(request)
    return error_answer(found) if isinstance(found, ApiError) else json_answer(profile_json(*found))


async def organizations(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR_KEY]
    account = sim.authenticate(request.headers)
    if isinstance(account, ApiError):
        return error_answer(account)
    return json_answer(organizations_json(sim.member_orgs(account)))


async def account(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR_KEY]
    found = sim.authenticate(request.headers)
    if isinstance(found, ApiError):
        return error_answer(found)
    return json_answer(account_json(found, sim.member_orgs(found)))


async def bootstrap(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR_KEY]
    found = sim.authenticate(request.headers)
    if isinstance(found, ApiError):
        return error_answer(found)
    return json_answer({"account": account_json(found, sim.member_orgs(found))})


def simulator_app(sim: Simulator) -> web.Application:
    """The aiohttp app that answers as the upstream would, from `sim`'s state."""
    app = web.Application(middlewares=[upstream_middleware])
    app[SIMULATOR_KEY] = sim
    app.router.add_get(f"{ORG}/usage", usage)
    app.router.add_get(f"{ORG}/projects/{{project_id}}", project)
    app.router.add_get(f"{ORG}/projects/{{project_id}}/docs", project_docs)
    app.router.add_get(f"{ORG}/projects/{{project_id}}/files", project_files)
    app.router.add_get(f"{ORG}/memory", memory)
    app.router.add_post(f"{ORG}/cowork/web_fetch", web_fetch)
    app.router.add_get("/api/organizations", organizations)
    app.router.add_get("/api/account", account)
    app.router.add_get("/api/bootstrap", bootstrap)
    app.router.add_get(f"{OAUTH}usage", oauth_usage)
    app.router.add_get(f"{OAUTH}profile", oauth_profile)
    add_control_routes(app, sim)
    return app
