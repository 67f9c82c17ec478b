"""``/flows``: versions, validate, publish, rollback."""

from __future__ import annotations

import logging

from aiohttp import web
from pydantic import Field

from controller.adapters.redis import flowstore as publish
from controller.admin.flowinput import _problem_field, _refusal, _validation
from controller.admin.http import BadRequest, _json
from controller.admin.routes.base import Route, _Body
from controller.core.flows import loader
from controller.ops.errors import OpsError

log = logging.getLogger("callctl.admin")


class RollbackBody(_Body):
    version: int | None = Field(None, ge=1, description="default: the previous version")


class FlowFilesBody(_Body):
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


class FlowsRoutes:

    async def _flow_files(self, request: web.Request) -> loader.LoadResult:
        ctype = request.content_type
        if ctype in ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml",
                     "text/plain"):
            raw = await request.read()
            try:
                text = loader.decode(raw, "flows.yaml")
            except loader.FlowInputError as e:
                raise _refusal(e.problem(), "(body)") from None
            if not text.strip():
                raise BadRequest(400, "an empty flow file", "(body)")
            return await self.load_flows({"flows.yaml": text}, "(body)")
        b: FlowFilesBody = await self.body(request, FlowFilesBody)
        for name in b.files:
            if (not name or len(name) > 128 or "/" in name or "\\" in name
                    or name.startswith(".") or not name.isprintable()):
                raise BadRequest(400, f"{name[:80]!r} is not a plain file name",
                                 f"files.{name[:80]}")
        return await self.load_flows(dict(b.files), "files")

    async def h_validate(self, request: web.Request) -> web.Response:
        res = await self._flow_files(request)
        return _json(_validation(res), 200 if not res.errors else 422)

    async def h_publish(self, request: web.Request) -> web.Response:
        res = await self._flow_files(request)
        if res.errors:
            body = _validation(res)
            body.update({"error": f"not published: {len(res.errors)} error(s)",
                         "field": _problem_field(res.errors[0]), "status": 422})
            return _json(body, 422)
        from redis.exceptions import RedisError

        try:
            done = await publish.publish_flows(self.ctl.store.redis, res,
                                               prefix=self.ctl.settings.redis_prefix)
        except (RedisError, OSError) as e:
            raise OpsError(503, f"redis unavailable: {type(e).__name__}") from None
        log.info("admin API: %s published flow version %d (%s)", self.who(request),
                 done.version, done.status)  # unchanged: the live version has this content
        return _json({**_validation(res), "published": done.version, "status": done.status})

    async def h_rollback(self, request: web.Request) -> web.Response:
        b: RollbackBody = await self.body(request, RollbackBody)
        from redis.exceptions import RedisError

        try:
            live = await publish.rollback(self.ctl.store.redis, b.version,
                                          prefix=self.ctl.settings.redis_prefix)
        except publish.RollbackError as e:
            raise OpsError(404, str(e), "version") from None
        except (RedisError, OSError) as e:
            raise OpsError(503, f"redis unavailable: {type(e).__name__}") from None
        log.info("admin API: %s rolled back to flow version %d", self.who(request), live)
        return _json({"live": live})

    async def h_versions(self, request: web.Request) -> web.Response:
        from redis.exceptions import RedisError

        try:
            rows = await publish.list_versions(self.ctl.store.redis,
                                               prefix=self.ctl.settings.redis_prefix)
        except (RedisError, OSError) as e:
            raise OpsError(503, f"redis unavailable: {type(e).__name__}") from None
        return _json([{"version": v.version, "published_at": v.published_at,
                       "files": list(v.files), "flows": v.flows, "dids": v.dids,
                       "live": v.live} for v in rows])
