"""``/failover``: failover tests."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from controller.admin.http import int_query, read_body, respond_json, who
from controller.admin.routing import P_LIMIT, Api, Body, Param, Route
from controller.ops import failover


class FailoverTestBody(Body):
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


async def h_failover_status(api: Api, request: web.Request) -> web.Response:
    return respond_json(await failover.test_status(api.ops,
                                                   int_query(request, "limit", 20) or 20))


async def h_failover_start(api: Api, request: web.Request) -> web.Response:
    b: FailoverTestBody = await read_body(request, FailoverTestBody)
    return respond_json(await failover.start_test(api.ops, b.line, b.seconds, by=who(request)))


async def h_failover_stop(api: Api, request: web.Request) -> web.Response:
    return respond_json(await failover.stop_test(api.ops, request.match_info["line"],
                                                 by=who(request)))
