"""The protocol floor: the least a Stasis app can do to connect a bench call, and nothing else.

    python -m bench.floorapp        (environment: the bench stack's, see bench/env.py)

It makes exactly the ARI requests the controller makes for a ``DID -> department -> agent``
call, in the same order, over the same transports and runtime (aiohttp for REST and the
websocket, the controller's event filter, the event loop of ``CALLCTL_LOOP``, the JSON of
``CALLCTL_JSON``): originate the agent, create the bridge,
ring the caller; on the agent's answer, answer the caller and add both to the bridge; when the
caller hangs up, hang the agent up and destroy the bridge. No flow, no Redis, no call state
beyond two dicts, no logging. Its CPU per call is what any Python asyncio controller pays
before doing anything of its own; the bench's ``floor`` figure sets it beside the controller's.
Every call dials ``PJSIP/agent3`` (the bench's answering phone).

``FLOOR_ANSWER=0`` skips the caller's ``answer`` request (joining a bridge does not answer the
caller: it then never gets its 200). ``FLOOR_MODE``: ``ctl`` (default) the controller's
exchange (7 requests a call); ``pool``: the same with bridges reused from a pool instead of
created and destroyed per call (5 requests); ``lean`` (or ``FLOOR_LEAN=1``): the leanest
exchange ARI allows, the pool and no ringback request (4 requests a call: originate, answer,
addChannel, hang the agent up), to see how much of Asterisk's and the app's cost those
requests are. Writes its pid to ``$BENCH_STATS.ready`` once connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import aiohttp

from bench.ctlproc import spawn, terminate
from controller import jsonx
from controller.adapters.ari.client import AriClient
from controller.adapters.ari.errors import AriError
from controller.config import load_settings
from controller.shell.runtime import EVENT_TYPES
from controller.tools import loops

MODES = ("ctl", "pool", "lean")
"""FLOOR_MODE values (see the module docstring)."""


class Floor:
    def __init__(self, ari: AriClient, answer: bool, mode: str) -> None:
        self.ari = ari
        self.answer = answer
        self.lean = mode == "lean"
        self.pooled = mode in ("pool", "lean")
        self.pool: list[str] = []  # lean: empty bridges to reuse
        self.bridges: dict[str, str] = {}  # caller -> its bridge
        self.leaving: dict[str, str] = {}  # lean: agent leg hung up -> its bridge
        self.legs: dict[str, str] = {}  # agent leg -> caller
        self.tasks: set[asyncio.Task[Any]] = set()

    def background(self, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def quiet(self, coro: Any) -> None:
        with contextlib.suppress(AriError):
            await coro

    async def inbound(self, caller: str) -> None:
        leg = f"{caller}-L1"
        self.legs[leg] = caller
        # the controller tags each leg with its target (controller.shell.legs: TARGET_VAR)
        tag = None if self.lean else {
            "CALLCTL_TARGET": '{"kind":"sip","address":"agent3","user":"floor","role":"primary"}'}
        await self.quiet(self.ari.originate("PJSIP/agent3", channel_id=leg, app=self.ari.app,
                                            app_args=f"leg,{caller}", caller_id="floor",
                                            originator=caller, timeout=30, variables=tag))
        if self.pooled:
            ring = [] if self.lean else [self.quiet(self.ari.ring(caller))]
            if self.pool:
                self.bridges[caller] = self.pool.pop()
                await asyncio.gather(*ring)
                return
            self.bridges[caller] = f"floor-{caller}"
            await asyncio.gather(self.quiet(self.ari.create_bridge(self.bridges[caller])),
                                 *ring)
            return
        self.bridges[caller] = f"{caller}-B"
        await asyncio.gather(self.quiet(self.ari.create_bridge(f"{caller}-B")),
                             self.quiet(self.ari.ring(caller)))

    async def answered(self, leg: str, caller: str) -> None:
        steps = [self.quiet(self.ari.add_to_bridge(self.bridges[caller], [caller, leg]))]
        if self.answer:
            steps.append(self.quiet(self.ari.answer(caller)))
        await asyncio.gather(*steps)

    async def ended(self, caller: str) -> None:
        leg = f"{caller}-L1"
        self.legs.pop(leg, None)
        await self.quiet(self.ari.hangup(leg))
        bridge = self.bridges.pop(caller, None)
        if bridge is None:
            return
        if self.pooled:
            self.leaving[leg] = bridge  # reused once the leg has left it
        else:
            await self.quiet(self.ari.destroy_bridge(bridge))

    def on_event(self, ev: dict[str, Any]) -> None:
        kind = ev.get("type")
        cid = (ev.get("channel") or {}).get("id", "")
        if kind == "StasisStart":
            if ev.get("args", [""])[:1] == ["inbound"]:
                self.background(self.inbound(cid))
            elif cid in self.legs:
                self.background(self.answered(cid, self.legs[cid]))
        elif kind == "StasisEnd" and cid.endswith("-L1"):
            if cid in self.leaving:
                self.pool.append(self.leaving.pop(cid))
        elif kind == "StasisEnd" and cid:
            self.background(self.ended(cid))


async def main() -> None:
    settings = load_settings()
    ari = AriClient(settings.ari_url, settings.ari_user, settings.ari_password, settings.app)
    mode = "lean" if os.environ.get("FLOOR_LEAN") == "1" else \
        os.environ.get("FLOOR_MODE", "ctl")
    if mode not in MODES:
        raise SystemExit(f"FLOOR_MODE={mode!r}: use one of {', '.join(MODES)}")
    floor = Floor(ari, answer=os.environ.get("FLOOR_ANSWER", "1") != "0", mode=mode)
    ready = Path(os.environ.get("BENCH_STATS", "floorstats.json") + ".ready")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with ari:
        ws = await ari.connect_events()
        await ari.set_event_filter(EVENT_TYPES)
        await asyncio.to_thread(ready.write_text, str(os.getpid()))

        async def read() -> None:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    floor.on_event(jsonx.loads(msg.data))

        reader = asyncio.create_task(read())
        await stop.wait()
        reader.cancel()
        await ws.close()
        for b in [*floor.pool, *floor.leaving.values()]:
            await floor.quiet(ari.destroy_bridge(b))


class FloorProc:
    """Start/stop the floor app as its own process (from the bench)."""

    def __init__(self, env: dict[str, str], workdir: Path, mode: str = "ctl") -> None:
        self.env = {**env, "BENCH_STATS": str(workdir / "floor"), "FLOOR_MODE": mode}
        self.env.pop("FLOOR_LEAN", None)
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> None:
        self.proc = spawn("bench.floorapp", self.env, self.workdir / "floor.log",
                          self.workdir / "floor.ready", timeout)

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        loops.run(main())
