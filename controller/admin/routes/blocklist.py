"""``/blocklist``."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from controller.admin.http import read_body, respond_json, who
from controller.admin.routing import Api, Body, Param, Route
from controller.ops import blocklist
from controller.ops.errors import OpsError


class BlockBody(Body):
    number: str = Field(description="a number, a 'prefix*' or 'withheld'", max_length=64)
    reason: str = Field("", max_length=200)


ROUTES: tuple[Route, ...] = (
    Route("GET", "/blocklist", "blocked", "Blocked numbers and prefixes", "blocklist"),
    Route("POST", "/blocklist", "block", "Block a number, prefix* or withheld callers",
          "blocklist", body=BlockBody),
    Route("DELETE", "/blocklist/{pattern}", "unblock", "Unblock (URL-encode '+' as %2B)",
          "blocklist", params=(Param("pattern", where="path"),), statuses=(404,)),
)


async def h_blocked(api: Api, request: web.Request) -> web.Response:
    return respond_json(await blocklist.list_blocked(api.ops))


async def h_block(api: Api, request: web.Request) -> web.Response:
    b: BlockBody = await read_body(request, BlockBody)
    return respond_json(await blocklist.block(api.ops, b.number, reason=b.reason,
                                              by=who(request)))


async def h_unblock(api: Api, request: web.Request) -> web.Response:
    try:
        return respond_json(await blocklist.unblock(api.ops, request.match_info["pattern"],
                                                    by=who(request)))
    except OpsError as e:  # the CLI's argument is the number; here the path's pattern
        if e.field == "number":
            e.field = "pattern"
        raise
