"""The admin API's middleware: bearer-token auth, strict query parameters, errors as JSON."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from controller.admin.http import MAX_BODY, BadRequest, error
from controller.admin.routes import PUBLIC_PATHS
from controller.admin.routes.base import Route
from controller.ops.errors import OpsError

log = logging.getLogger("callctl.admin")


def token_ok(header: str, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    scheme, _, cred = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(cred.strip().encode(), token.encode())


def check_query(request: web.Request, route: Route | None) -> None:
    """Only the route's own query parameters, each at most once (a typo is not ignored).
    Public routes (``/health``...) take any: probes add cache-busting parameters."""
    if route is not None and route.public:
        return
    known = {p.name for p in route.params if p.where == "query"} if route else set()
    for name in request.query:
        if name not in known:
            allowed = ", ".join(sorted(known)) or "none"
            raise BadRequest(400, f"unknown query parameter {name[:40]!r} (allowed: "
                             f"{allowed})", name[:80])
        if len(request.query.getall(name)) > 1:
            raise BadRequest(400, f"query parameter {name!r} given more than once", name)


class Middleware:

    @web.middleware
    async def _auth(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS and request.method in ("GET", "HEAD"):
            return await handler(request)
        if not token_ok(request.headers.get("Authorization", ""), self.token):
            resp = error(401, "missing or wrong bearer token (Authorization: Bearer <admin "
                         "token>, see ADMIN_TOKEN in the run directory's secrets.env)")
            resp.headers["WWW-Authenticate"] = 'Bearer realm="callctl"'
            return resp
        return await handler(request)

    @web.middleware
    async def _query(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        resource = request.match_info.route.resource
        if resource is not None:  # a route of ours (not a 404/405)
            method = "GET" if request.method == "HEAD" else request.method
            check_query(request, self._routes.get((method, resource.canonical)))
        return await handler(request)

    @web.middleware
    async def _errors(self, request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
        try:
            return await handler(request)
        except OpsError as e:
            return error(e.status, e.message, e.field)
        except BadRequest as e:
            return error(e.status, e.message, e.field, **e.extra)
        except web.HTTPRequestEntityTooLarge:
            return error(413, f"body larger than {MAX_BODY} bytes", "(body)")
        except web.HTTPException as e:
            if e.status >= 400:
                return error(e.status, e.reason)
            raise
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("admin API: %s %s failed", request.method, request.path)
            return error(500, "internal error (see the controller log)")
