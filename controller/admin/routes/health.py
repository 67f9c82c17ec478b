"""``/health``, ``/metrics``, ``/openapi.json``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from controller.adapters.prometheus import CONTENT_TYPE as METRICS_CONTENT_TYPE
from controller.admin.http import respond_json
from controller.admin.openapi import document
from controller.admin.routing import Api, Route
from controller.shell.services import ari_nodes

HEALTH_TIMEOUT = 2.0


ROUTES: tuple[Route, ...] = (
    Route("GET", "/health", "health", "Ready when ARI (REST and events) and Redis answer",
          "health", public=True, statuses=(503,)),
    Route("GET", "/metrics", "metrics", "Prometheus metrics", "health",
          produces="text/plain"),
    Route("GET", "/openapi.json", "openapi", "This document", "health", public=True),
)


async def h_health(api: Api, request: web.Request) -> web.Response:
    ctl = api.ctl

    async def ari() -> dict[str, Any]:
        problems = []
        for node in ari_nodes(ctl):
            name = getattr(node, "name", None) or "ari"
            try:
                async with asyncio.timeout(HEALTH_TIMEOUT):
                    await node.ari.asterisk_info()
            except Exception as e:
                problems.append(f"{name}: {type(e).__name__}")
                continue
            if getattr(node, "held", True) and not node.stream.connected:
                problems.append(f"{name}: event websocket not connected")
        return {"ok": False, "error": "; ".join(problems)} if problems else {"ok": True}

    async def redis() -> dict[str, Any]:
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT):
                ok = await ctl.store.ping()
        except TimeoutError:
            ok = False
        return {"ok": True} if ok else {"ok": False, "error": "no answer"}

    def replaced() -> dict[str, Any]:
        # Another websocket took our Stasis app over lately: calls were (or are) not
        # heard; the stream takes it back, but an operator must find the other listener.
        taken = []
        for node in ari_nodes(ctl):
            stream = node.stream
            recently = getattr(stream, "replaced_recently", None)
            if recently is not None and recently():
                ago = time.monotonic() - (stream.replaced_at or 0.0)
                taken.append(f"{getattr(node, 'name', None) or 'ari'}: Stasis app "
                             f"{ctl.settings.app} taken over by another websocket "
                             f"{stream.replaced} time(s), last {ago:.0f} s ago")
        return {"ok": False, "error": "; ".join(taken)} if taken else {"ok": True}

    a, r = await asyncio.gather(ari(), redis())
    checks = {"ari": a, "redis": r, "ari_replaced": replaced()}
    failing = [n for n, c in checks.items() if not c["ok"]]
    return respond_json({"ready": not failing, "failing": failing,
                         "checks": checks}, 503 if failing else 200)


async def h_metrics(api: Api, request: web.Request) -> web.Response:
    text = api.ctl.services.metrics.render()
    return web.Response(body=text.encode(), headers={"Content-Type": METRICS_CONTENT_TYPE})


async def h_openapi(api: Api, request: web.Request) -> web.Response:
    return respond_json(document(api.routes))
