"""``/status``."""

from __future__ import annotations

from aiohttp import web

from controller.admin.http import respond_json
from controller.admin.routing import Api, Route
from controller.ops import status

ROUTES: tuple[Route, ...] = (
    Route("GET", "/status", "status", "Controller, ARI, AMI, Redis, live calls", "status"),
)


async def h_status(api: Api, request: web.Request) -> web.Response:
    data = await status.get_status(api.ops)
    data["services"] = api.ctl.services.status()
    return respond_json(data)
