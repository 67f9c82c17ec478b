"""The admin API's routes, one module per area (an OpenAPI tag): each declares its part of
the route table next to its handlers and body models; here they are joined in the order
``/openapi.json`` lists them."""

from __future__ import annotations

from controller.admin.routes import (
    blocklist,
    calls,
    departments,
    diagram,
    failover,
    flows,
    health,
    simulate,
    status,
    users,
)
from controller.admin.routing import Handler, Route

AREAS = (health, status, calls, users, departments, blocklist, failover, simulate, flows,
         diagram)
ROUTES: tuple[Route, ...] = tuple(r for area in AREAS for r in area.ROUTES)
HANDLERS: dict[str, Handler] = {r.handler: getattr(area, "h_" + r.handler)
                                for area in AREAS for r in area.ROUTES}
"""Route handler name -> ``h_<name>`` of its module (a route without one fails at import)."""
ROUTE_OF: dict[tuple[str, str], Route] = {(r.method, r.path): r for r in ROUTES}
PUBLIC_PATHS = frozenset(r.path for r in ROUTES if r.public)
