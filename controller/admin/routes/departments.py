"""``/departments``."""

from __future__ import annotations

from aiohttp import web

from controller.admin.http import respond_json
from controller.admin.routing import Api, Route
from controller.ops import departments

ROUTES: tuple[Route, ...] = (
    Route("GET", "/departments", "departments", "Departments, members, answered/missed",
          "departments"),
)


async def h_departments(api: Api, request: web.Request) -> web.Response:
    return respond_json(await departments.list_departments(api.ops))
