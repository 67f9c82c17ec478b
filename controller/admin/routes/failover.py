"""``/failover``: failover tests."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from controller.admin.http import _int_query, _json
from controller.admin.routes.base import P_LIMIT, Param, Route, _Body
from controller.ops import failover


class FailoverTestBody(_Body):
    line: str = Field(description="a published DID or department id", max_length=64)
    seconds: int = Field(900, ge=1, le=7 * 86400, description="auto-revert after (s)")


ROUTES: tuple[Route, ...] = (
    Route("GET", "/failover", "failover_status", "Active failover tests and the test log",
          "failover", params=(P_LIMIT,)),
    Route("POST", "/failover/tests", "failover_start", "Start a failover test on a line",
          "failover", body=FailoverTestBody, statuses=(404,)),
    Route("DELETE", "/failover/tests/{line}", "failover_stop", "Stop a failover test",
          "failover", params=(Param("line", where="path"),), statuses=(404,)),
)


class FailoverRoutes:

    async def h_failover_status(self, request: web.Request) -> web.Response:
        return _json(await failover.test_status(self.ops, _int_query(request, "limit", 20) or 20))

    async def h_failover_start(self, request: web.Request) -> web.Response:
        b: FailoverTestBody = await self.body(request, FailoverTestBody)
        return _json(await failover.start_test(self.ops, b.line, b.seconds, by=self.who(request)))

    async def h_failover_stop(self, request: web.Request) -> web.Response:
        return _json(await failover.stop_test(self.ops, request.match_info["line"],
                                                  by=self.who(request)))
