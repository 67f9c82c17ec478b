"""A webhook endpoint for tests: the real peer of callctl's webhook client (not a fake of
anything callctl talks to on the call path). Records every POST (headers, raw body)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


class Receiver:
    """A webhook endpoint in the test: records every POST (headers, raw body)."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> Receiver:
        async def hook(request: web.Request) -> web.Response:
            self.posts.append((dict(request.headers), await request.read()))
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", hook)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    def events(self, name: str) -> list[dict[str, Any]]:
        return [json.loads(b) for h, b in self.posts if h.get("X-Callctl-Event") == name]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
