"""``/flows``: validate, publish, rollback, the versions."""

from __future__ import annotations

import logging

from aiohttp import web
from pydantic import Field

from controller.admin.flowinput import load_flows, problem_field, refusal, validation
from controller.admin.http import BadRequest, read_body, respond_json, who
from controller.admin.routing import Api, Body, Route
from controller.core.flows import loader
from controller.ops import flows

log = logging.getLogger("callctl.admin")


class RollbackBody(Body):
    version: int | None = Field(None, ge=1, description="default: the previous version")


class FlowFilesBody(Body):
    files: dict[str, str] = Field(min_length=1, max_length=100,
                                  description="file name -> YAML text")


ROUTES: tuple[Route, ...] = (
    Route("GET", "/flows/versions", "versions", "Published flow versions", "flows"),
    Route("POST", "/flows/validate", "validate", "Validate flow files (nothing changes)",
          "flows", body=FlowFilesBody, yaml_body=True, statuses=(413, 422)),
    Route("POST", "/flows/publish", "publish", "Validate and publish flow files", "flows",
          body=FlowFilesBody, yaml_body=True, statuses=(413, 422)),
    Route("POST", "/flows/rollback", "rollback", "Make an earlier version live", "flows",
          body=RollbackBody, statuses=(404,)),
)


async def _flow_files(api: Api, request: web.Request) -> loader.LoadResult:
    """A validate/publish request's flow files, loaded: one YAML file as the body, or JSON
    ``{"files": {name: text}}``."""
    ctype = request.content_type
    if ctype in ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml",
                 "text/plain"):
        raw = await request.read()
        try:
            text = loader.decode(raw, "flows.yaml")
        except loader.FlowInputError as e:
            raise refusal(e.problem(), "(body)") from None
        if not text.strip():
            raise BadRequest(400, "an empty flow file", "(body)")
        return await load_flows(api.flow_worker, {"flows.yaml": text}, "(body)")
    b: FlowFilesBody = await read_body(request, FlowFilesBody)
    for name in b.files:
        if (not name or len(name) > 128 or "/" in name or "\\" in name
                or name.startswith(".") or not name.isprintable()):
            raise BadRequest(400, f"{name[:80]!r} is not a plain file name",
                             f"files.{name[:80]}")
    return await load_flows(api.flow_worker, dict(b.files), "files")


async def h_validate(api: Api, request: web.Request) -> web.Response:
    res = await _flow_files(api, request)
    return respond_json(validation(res), 200 if not res.errors else 422)


async def h_publish(api: Api, request: web.Request) -> web.Response:
    res = await _flow_files(api, request)
    if res.errors:
        body = validation(res)
        body.update({"error": f"not published: {len(res.errors)} error(s)",
                     "field": problem_field(res.errors[0]), "status": 422})
        return respond_json(body, 422)
    done = await flows.publish(api.ops, res)
    log.info("admin API: %s published flow version %d (%s)", who(request),
             done.version, done.status)  # unchanged: the live version has this content
    return respond_json({**validation(res), "published": done.version, "status": done.status})


async def h_rollback(api: Api, request: web.Request) -> web.Response:
    b: RollbackBody = await read_body(request, RollbackBody)
    live = await flows.rollback(api.ops, b.version)
    log.info("admin API: %s rolled back to flow version %d", who(request), live)
    return respond_json({"live": live})


async def h_versions(api: Api, request: web.Request) -> web.Response:
    return respond_json(await flows.list_versions(api.ops))
