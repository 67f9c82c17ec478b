"""A loopback stand-in for Asterisk's ARI, for the event-loop figure only.

It measures how many Stasis start -> end cycles per second one controller process turns
over, with Asterisk's own cost taken out: the websocket sends ``StasisStart`` (inbound, the
event-loop DID, whose flow hangs up at once), the controller runs the call (engine, Redis
writes, ``DELETE /channels/{id}``), and the DELETE is answered with ``ChannelDestroyed`` +
``StasisEnd`` and the next ``StasisStart``. ``window`` calls are kept in flight.
It is a benchmark tool: the tests run against the real Asterisk.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import WSMsgType, web

TS = "2024-03-01T10:00:00.123+0000"


def _channel(cid: str, did: str) -> dict[str, Any]:
    return {
        "id": cid, "name": f"PJSIP/carrier-{cid}", "state": "Ring",
        "caller": {"name": "Bench", "number": "+14440000001"},
        "connected": {"name": "", "number": ""}, "accountcode": "",
        "dialplan": {"context": "callctl-did", "exten": did, "priority": 4,
                     "app_name": "Stasis", "app_data": f"app,inbound,{did}"},
        "creationtime": TS, "language": "en",
    }


class FakeAri:
    def __init__(self, app: str, did: str, window: int = 50) -> None:
        self.app = app
        self.did = did
        self.window = window
        self.ws: web.WebSocketResponse | None = None
        self.seq = 0
        self.done = 0
        self.running = False
        self.t_first: float | None = None
        self.runner: web.AppRunner | None = None

    async def start(self, port: int) -> None:
        app = web.Application()
        app.router.add_get("/ari/asterisk/info", self.info)
        app.router.add_get("/ari/events", self.events)
        app.router.add_get("/ari/channels", self.list_channels)
        app.router.add_get("/ari/bridges", self.list_channels)
        app.router.add_delete("/ari/channels/{id}", self.hangup)
        app.router.add_route("*", "/ari/{tail:.*}", self.no_content)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()

    async def stop(self) -> None:
        self.running = False
        if self.ws is not None:
            await self.ws.close()
        if self.runner is not None:
            await self.runner.cleanup()

    async def info(self, request: web.Request) -> web.Response:
        return web.json_response({"system": {"version": "fake"}})

    async def list_channels(self, request: web.Request) -> web.Response:
        return web.json_response([])

    async def no_content(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def events(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self.ws = ws
        async for msg in ws:
            if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break
        return ws

    async def _send(self, ev: dict[str, Any]) -> None:
        if self.ws is not None and not self.ws.closed:
            await self.ws.send_str(json.dumps(ev))

    async def _start_one(self) -> None:
        self.seq += 1
        cid = f"ev{self.seq}"
        await self._send({"type": "StasisStart", "timestamp": TS, "application": self.app,
                          "args": ["inbound", self.did], "channel": _channel(cid, self.did)})

    async def hangup(self, request: web.Request) -> web.Response:
        cid = request.match_info["id"]
        asyncio.get_running_loop().call_soon(asyncio.ensure_future, self._ended(cid))
        return web.Response(status=204)

    async def _ended(self, cid: str) -> None:
        ch = _channel(cid, self.did)
        await self._send({"type": "ChannelDestroyed", "timestamp": TS, "application": self.app,
                          "cause": 16, "cause_txt": "Normal Clearing", "channel": ch})
        await self._send({"type": "StasisEnd", "timestamp": TS, "application": self.app,
                          "channel": ch})
        self.done += 1
        if self.running:
            await self._start_one()

    async def run(self, seconds: float, warmup: float = 1.0) -> dict[str, float]:
        """Pump cycles for ``warmup + seconds``; returns cycles/s over the last ``seconds``."""
        deadline = time.monotonic() + 30
        while self.ws is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the controller never connected to the fake ARI")
            await asyncio.sleep(0.05)
        self.running = True
        for _ in range(self.window):
            await self._start_one()
        await asyncio.sleep(warmup)
        d0, t0 = self.done, time.monotonic()
        await asyncio.sleep(seconds)
        d1, t1 = self.done, time.monotonic()
        self.running = False
        return {"cycles": d1 - d0, "seconds": t1 - t0, "per_s": (d1 - d0) / (t1 - t0)}
