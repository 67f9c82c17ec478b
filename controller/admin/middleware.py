"""The admin API's middleware: bearer-token auth, strict query parameters, errors as JSON."""

from __future__ import annotations

import asyncio
import hmac
import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from controller.admin.http import MAX_BODY, BadRequest, error
from controller.admin.routes import PUBLIC_PATHS, ROUTE_OF
from controller.admin.routing import Route
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


def auth(token: str) -> Middleware:
    """Every request but a public route's GET/HEAD needs ``Authorization: Bearer <token>``,
    else 401 before the handler reads or changes anything."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS and request.method in ("GET", "HEAD"):
            return await handler(request)
        if not token_ok(request.headers.get("Authorization", ""), token):
            resp = error(401, "missing or wrong bearer token (Authorization: Bearer <admin "
                         "token>, see ADMIN_TOKEN in the run directory's secrets.env)")
            resp.headers["WWW-Authenticate"] = 'Bearer realm="callctl"'
            return resp
        return await handler(request)

    return middleware


@web.middleware
async def strict_query(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A route of ours takes only its own query parameters (:func:`check_query`)."""
    resource = request.match_info.route.resource
    if resource is not None:  # a route of ours (not a 404/405)
        method = "GET" if request.method == "HEAD" else request.method
        check_query(request, ROUTE_OF.get((method, resource.canonical)))
    return await handler(request)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors as the JSON error body: OpsError and BadRequest with their status, aiohttp's
    own (404, 405, 413), anything else 500 (logged)."""
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
