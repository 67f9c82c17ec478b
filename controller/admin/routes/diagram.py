"""``/flows/graph``, ``/flows/live`` and the diagram page."""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web

from controller.admin.diagram import flow_graphs, live_positions
from controller.admin.http import respond_json
from controller.admin.routing import Api, Route
from controller.core.flows.schema import FLOW_VAR
from controller.ops.flows import live_flows

DIAGRAM_HTML = Path(__file__).parents[1] / "diagram.html"


ROUTES: tuple[Route, ...] = (
    Route("GET", "/flows/graph", "graph", "The published flows as graphs", "flows"),
    Route("GET", "/flows/live", "live", "Live calls and the node each is at", "flows"),
    Route("GET", "/flows/diagram", "diagram_page",
          "Flow diagram page (open with #token=<admin token>)", "flows", public=True,
          produces="text/html"),
)


async def h_graph(api: Api, request: web.Request) -> web.Response:
    live = await live_flows(api.ops)
    return respond_json(flow_graphs(live[1] if live else None,
                                     live[0] if live else None))


async def h_live(api: Api, request: web.Request) -> web.Response:
    """This controller's calls with the node each is at, plus the other controllers'
    live calls from Redis (their node is known once bridged: the saved ``path``)."""
    live = api.ctl.flows.current
    calls = []
    for call in list(api.ctl.calls.values()):
        ctx = call.ctx
        calls.append({"call_id": call.id, "did": ctx.did, "caller": ctx.caller,
                      "flow": ctx.vars.get(FLOW_VAR), "node": ctx.path[-1] if ctx.path
                      else None, "started": call.started, "flow_version": call.version,
                      "answered_by": ctx.answered_by, "here": True})
    mine = {c["call_id"] for c in calls}
    try:
        rows = await api.ctl.store.live_calls()
    except Exception:
        rows = []
    for r in rows:
        if r.get("id") in mine:
            continue
        try:
            path = json.loads(r.get("path") or "[]")
        except ValueError:
            path = []
        flow = live[1].flow_for_did(r.get("did", "")) if live else None
        calls.append({"call_id": r.get("id"), "did": r.get("did"),
                      "caller": r.get("caller"), "flow": flow.id if flow else None,
                      "node": path[-1] if path else None, "started": r.get("started"),
                      "flow_version": r.get("flow_version"),
                      "answered_by": r.get("answered_by") or None, "here": False})
    return respond_json({"version": live[0] if live else None, "calls": calls,
                  "positions": live_positions(calls)})


async def h_diagram_page(api: Api, request: web.Request) -> web.Response:
    return web.Response(body=DIAGRAM_HTML.read_bytes(), content_type="text/html",
                        charset="utf-8",
                        headers={"Cache-Control": "no-store",
                                 "Content-Security-Policy":
                                     "default-src 'none'; script-src 'unsafe-inline'; "
                                     "style-src 'unsafe-inline'; connect-src 'self'; "
                                     "img-src 'self' data:",
                                 "Referrer-Policy": "no-referrer"})
