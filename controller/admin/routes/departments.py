"""``/departments``."""

from __future__ import annotations

from aiohttp import web

from controller.admin.http import _json
from controller.admin.routes.base import Route
from controller.ops import departments

ROUTES: tuple[Route, ...] = (
    Route("GET", "/departments", "departments", "Departments, members, answered/missed",
          "departments"),
)


class DepartmentsRoutes:

    async def h_departments(self, request: web.Request) -> web.Response:
        return _json(await departments.list_departments(self.ops))
