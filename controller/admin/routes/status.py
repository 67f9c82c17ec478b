"""``/status``."""

from __future__ import annotations

from aiohttp import web

from controller.admin.http import _json
from controller.admin.routes.base import Route
from controller.ops import status

ROUTES: tuple[Route, ...] = (
    Route("GET", "/status", "status", "Controller, ARI, AMI, Redis, live calls", "status"),
)


class StatusRoutes:

    async def h_status(self, request: web.Request) -> web.Response:
        data = await status.get_status(self.ops)
        data["services"] = self.ctl.services.status()
        return _json(data)
