"""``/calls``: recent, live, since a time, export, one call."""

from __future__ import annotations

from aiohttp import web

from controller.admin.http import BadRequest, bool_query, int_query, respond_json, since_query
from controller.admin.routing import P_LIMIT, Api, Param, Route
from controller.ops import calls as ops_calls
from controller.ops.calls import records_csv

ROUTES: tuple[Route, ...] = (
    Route("GET", "/calls", "calls", "Recent calls, calls since a time, or live calls", "calls",
          params=(Param("live", "boolean", "live calls only"),
                  Param("since", description="15m, 2h, 7d, an ISO time or epoch seconds"),
                  P_LIMIT)),
    Route("GET", "/calls/export", "calls_export", "Call log export (CSV or JSON)", "calls",
          params=(Param("format", description="csv (default) or json"),
                  Param("since", description="15m, 2h, 7d, an ISO time or epoch seconds"),
                  P_LIMIT), produces="text/csv"),
    Route("GET", "/calls/{call_id}", "call", "One call: record, decision trace, events",
          "calls", params=(Param("call_id", where="path"),), statuses=(404,)),
)


async def h_calls(api: Api, request: web.Request) -> web.Response:
    return respond_json(await ops_calls.list_calls(
        api.ops, live=bool_query(request, "live"), since=since_query(request),
        limit=int_query(request, "limit", None)))


async def h_calls_export(api: Api, request: web.Request) -> web.Response:
    fmt = request.query.get("format", "csv")
    if fmt not in ("csv", "json"):
        raise BadRequest(400, f"{fmt!r}: use csv or json", "format")
    since = since_query(request)
    rows = await ops_calls.list_calls(api.ops, since=since if since is not None else 0.0,
                                      limit=int_query(request, "limit", None))
    if fmt == "json":
        return respond_json(rows)
    return web.Response(text=records_csv(rows), content_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="calls.csv"'})


async def h_call(api: Api, request: web.Request) -> web.Response:
    return respond_json(await ops_calls.get_call(api.ops, request.match_info["call_id"]))
