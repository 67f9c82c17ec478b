"""``/blocklist``."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from controller.admin.http import _json
from controller.admin.routes.base import Param, Route, _Body
from controller.ops import blocklist
from controller.ops.errors import OpsError


class BlockBody(_Body):
    number: str = Field(description="a number, a 'prefix*' or 'withheld'", max_length=64)
    reason: str = Field("", max_length=200)


ROUTES: tuple[Route, ...] = (
    Route("GET", "/blocklist", "blocked", "Blocked numbers and prefixes", "blocklist"),
    Route("POST", "/blocklist", "block", "Block a number, prefix* or withheld callers",
          "blocklist", body=BlockBody),
    Route("DELETE", "/blocklist/{pattern}", "unblock", "Unblock (URL-encode '+' as %2B)",
          "blocklist", params=(Param("pattern", where="path"),), statuses=(404,)),
)


class BlocklistRoutes:

    async def h_blocked(self, request: web.Request) -> web.Response:
        return _json(await blocklist.list_blocked(self.ops))

    async def h_block(self, request: web.Request) -> web.Response:
        b: BlockBody = await self.body(request, BlockBody)
        return _json(await blocklist.block(self.ops, b.number, reason=b.reason,
                                           by=self.who(request)))

    async def h_unblock(self, request: web.Request) -> web.Response:
        try:
            return _json(await blocklist.unblock(self.ops, request.match_info["pattern"],
                                                by=self.who(request)))
        except OpsError as e:  # the CLI's argument is the number; here the path's pattern
            if e.field == "number":
                e.field = "pattern"
            raise
