"""``/calls``: recent, live, since a time, export, one call."""

from __future__ import annotations

from aiohttp import web

from controller.admin.http import BadRequest, _bool_query, _int_query, _json
from controller.admin.routes.base import P_LIMIT, Param, Route
from controller.ops import calls as ops_calls
from controller.ops.calls import records_csv
from controller.ops.parse import parse_since

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


class CallsRoutes:

    def _since(self, request: web.Request) -> float | None:
        raw = request.query.get("since")
        return None if not raw else parse_since(raw)

    async def h_calls(self, request: web.Request) -> web.Response:
        return _json(await ops_calls.list_calls(self.ops, live=_bool_query(request, "live"),
                                          since=self._since(request),
                                          limit=_int_query(request, "limit", None)))

    async def h_calls_export(self, request: web.Request) -> web.Response:
        fmt = request.query.get("format", "csv")
        if fmt not in ("csv", "json"):
            raise BadRequest(400, f"{fmt!r}: use csv or json", "format")
        since = self._since(request)
        rows = await ops_calls.list_calls(self.ops, since=since if since is not None else 0.0,
                                    limit=_int_query(request, "limit", None))
        if fmt == "json":
            return _json(rows)
        return web.Response(text=records_csv(rows), content_type="text/csv",
                            headers={"Content-Disposition": 'attachment; filename="calls.csv"'})

    async def h_call(self, request: web.Request) -> web.Response:
        return _json(await ops_calls.get_call(self.ops, request.match_info["call_id"]))
