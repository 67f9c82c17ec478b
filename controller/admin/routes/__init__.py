"""The admin API's routes, one module per area (OpenAPI tag)."""

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
from controller.admin.routes.base import Route

ROUTES: tuple[Route, ...] = (*health.ROUTES, *status.ROUTES, *calls.ROUTES, *users.ROUTES,
    *departments.ROUTES, *blocklist.ROUTES, *failover.ROUTES, *simulate.ROUTES,
    *flows.ROUTES, *diagram.ROUTES)


class Routes(health.HealthRoutes, status.StatusRoutes, calls.CallsRoutes, users.UsersRoutes,
    departments.DepartmentsRoutes, blocklist.BlocklistRoutes, failover.FailoverRoutes,
    simulate.SimulateRoutes, flows.FlowsRoutes, diagram.DiagramRoutes):
    """Every route's handler (``h_<handler>``)."""


PUBLIC_PATHS = frozenset(r.path for r in ROUTES if r.public)
