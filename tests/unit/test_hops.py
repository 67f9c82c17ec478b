"""How many hops an event takes from the websocket to the REST request it causes (issue 15:
at most 5), counted on the real code path.

The real stack with two stand-ins, no network: the ARI websocket (an object whose
``receive()`` gives one message) read by the real ``EventStream._read``, the real router
(``Controller.on_node_event``), the real live ``Call`` (the Port) driving the real
interpreter, the real ``AriClient`` over a stand-in HTTP transport that records requests.

A hop is a call from one ``controller`` module into another that the event is carried
through. ``sys.setprofile`` sees every call; the path is read off the stacks, not chosen by
hand:

- the reader's stack when the event is put into the call's inbox, and the call that made
  the event object (the parse);
- the call task's stack when the REST request is made (across the tasks it started, by
  their coroutines' origins) up to the frame that took the event out of the inbox;
- a call from a frame of that path into ``controller.core`` with the event's data as an
  argument (a state machine deciding on it: a digit, a leg; a value object built from it
  is not a hop).

Other calls the path makes (the router reading the event's channel id, a job scheduled, a
caller id formatted, a trace entry) are printed as side calls, not counted: counting the
router's ``channel_id_of`` too would make each count one more. A coroutine resumed by
asyncio (the call's task waking up) is not a call: it was made before the event came.
Measured the same way before the interpreter (everything in shell/call.py): 4 and 4.
"""

from __future__ import annotations

import asyncio
import dis
import itertools
import json
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import aiohttp

from controller.adapters.ari.stream import EventStream
from controller.config import load_settings
from controller.core.flows.schema import FlowSet
from controller.core.model import CallContext, UserFacts
from controller.core.port import (
    Dtmf,
    LegAnswered,
    LegEnded,
    LegLeft,
    PlaybackEnded,
    RecordingEnded,
)
from controller.shell.call import Call
from controller.shell.runtime import Controller

LIMIT = 5
CALLER = "1700000000.1"
SIGNALS = (Dtmf, PlaybackEnded, RecordingEnded, LegAnswered, LegEnded, LegLeft)


def _module(frame: types.FrameType) -> str:
    return str(frame.f_globals.get("__name__", ""))


def _ours(mod: str) -> bool:
    return mod == "controller" or mod.startswith("controller.")


def _name(frame: types.FrameType) -> str:
    return f"{_module(frame).removeprefix('controller.')}.{frame.f_code.co_qualname}"


_FIRST: dict[types.CodeType, int] = {}


def _fresh(frame: types.FrameType) -> bool:
    """A new call (not a generator or coroutine resumed)."""
    code = frame.f_code
    if code not in _FIRST:
        _FIRST[code] = next(i.offset for i in dis.get_instructions(code)
                            if i.opname == "RESUME")
    return frame.f_lasti <= _FIRST[code]


@dataclass
class Tracer:
    """Records one event's handling, from ``start`` to ``stop``."""

    calls: list[tuple[types.FrameType, types.FrameType, list[Any]]] = field(
        default_factory=list)  # (caller, callee, arguments), fresh cross-module calls
    returns: list[tuple[types.FrameType, types.FrameType, Any]] = field(default_factory=list)
    enqueued: Any = None
    reader: list[types.FrameType] = field(default_factory=list)
    receiver: tuple[str, str] | None = None  # (file, function) of the frame the signal reached
    signal: Any = None
    rest: list[tuple[str, str]] = field(default_factory=list)  # (module, function), innermost

    def start(self) -> None:
        sys.setprofile(self.profile)

    def profile(self, frame: types.FrameType, event: str, arg: Any) -> None:
        back = frame.f_back
        if event == "call":
            if frame.f_code is asyncio.Queue.put_nowait.__code__ and back is not None \
                    and _ours(_module(back)) and self.enqueued is None:
                self.enqueued = frame.f_locals.get("item")
                f: types.FrameType | None = back
                while f is not None:
                    if _ours(_module(f)):
                        self.reader.append(f)
                    f = f.f_back
            elif back is not None and _ours(_module(frame)) and _ours(_module(back)) and \
                    _module(frame) != _module(back) and _fresh(frame):
                self.calls.append((back, frame, list(frame.f_locals.values())))
        elif event == "return" and back is not None and _ours(_module(frame)):
            if isinstance(arg, SIGNALS) and frame.f_code is Call.next_event.__code__:
                self.receiver = (back.f_code.co_filename, back.f_code.co_name)
                self.signal = arg
            elif _ours(_module(back)) and _module(frame) != _module(back):
                self.returns.append((frame, back, arg))

    def stop(self) -> None:
        """At the REST request: the call task's path to it, then stop tracing."""
        sys.setprofile(None)
        files = {getattr(m, "__file__", None): name for name, m in list(sys.modules.items())
                 if _ours(name)}
        task = asyncio.current_task()
        assert task is not None
        coro: Any = task.get_coro()
        f: types.FrameType | None = sys._getframe(1)
        while f is not None:
            if _ours(_module(f)):
                self.rest.append((_module(f), f.f_code.co_name))
                if (f.f_code.co_filename, f.f_code.co_name) == self.receiver:
                    return
            if f is coro.cr_frame:
                break
            f = f.f_back
        for filename, _line, fn in coro.cr_origin or ():  # the stack that started this task
            if filename in files:
                self.rest.append((files[filename], fn))
                if (filename, fn) == self.receiver:
                    return
        raise AssertionError(f"the REST request is not reached from the inbox: {self.rest}")

    def hops(self) -> list[str]:
        assert self.enqueued is not None and self.receiver is not None
        path: list[str] = []
        reader = list(reversed(self.reader))  # outermost (the stream) first
        parse = [(f, b) for f, b, value in self.returns
                 if value is self.enqueued and b is reader[0]]
        assert len(parse) == 1, parse
        path.append(f"{_name(parse[0][1])} -> {_name(parse[0][0])}  (the event parsed)")
        for caller, callee in itertools.pairwise(reader):
            if _module(caller) != _module(callee):
                path.append(f"{_name(caller)} -> {_name(callee)}")
        rest = list(reversed(self.rest))  # the receiving frame first
        path.append(f"   [the inbox hands the signal to {rest[0][0]}.{rest[0][1]}: a return]")
        for caller, callee, _args in self.decisions():
            path.append(f"{_name(caller)} -> {_name(callee)}  (a decision on it)")
        for (m1, f1), (m2, f2) in itertools.pairwise(rest):
            if m1 != m2:
                path.append(f"{m1.removeprefix('controller.')}.{f1} -> "
                            f"{m2.removeprefix('controller.')}.{f2}")
        return path

    def _on_path(self) -> set[tuple[str, str]]:
        return {(_module(f), f.f_code.co_name) for f in self.reader} | set(self.rest)

    def decisions(self) -> list[tuple[types.FrameType, types.FrameType, list[Any]]]:
        sig = self.signal
        data = {id(x) for x in (sig, self.enqueued)} | {
            id(getattr(sig, k)) for k in ("digit", "leg") if hasattr(sig, k)}
        values = [getattr(sig, k) for k in ("digit", "leg") if hasattr(sig, k)]
        return [(a, b, args) for a, b, args in self.calls
                if (_module(a), a.f_code.co_name) in self._on_path()
                and _module(b).startswith("controller.core.")
                and b.f_code.co_qualname != "CallContext.log"  # the trace: a sink
                and b.f_code.co_name != "__init__"  # a value built, not a decision
                and any(id(v) in data or v in values for v in args if isinstance(v, str)
                        or id(v) in data)]

    def side_calls(self) -> list[str]:
        """Cross-module calls made by the path's frames that the event is not carried
        through (before the REST request)."""
        counted = {(id(a), id(b)) for a, b, _ in self.decisions()}
        return [f"{_name(a)} -> {_name(b)}" for a, b, _ in self.calls
                if (_module(a), a.f_code.co_name) in self._on_path()
                and (id(a), id(b)) not in counted]


# ------------------------------------------------------------------------------ stand-ins


class Transport:
    """ARI's REST side: records each request; ``wanted`` is the one the test waits for."""

    closed = False

    def __init__(self, tracer: Tracer, ready: Callable[[str, str], bool]) -> None:
        self.tracer = tracer
        self.seen: list[tuple[str, str]] = []
        self.ready_when, self.ready = ready, asyncio.Event()
        self.wanted: Callable[[str, str], bool] = lambda _m, _t: False
        self.hit = asyncio.Event()

    async def request(self, method: str, target: str, body: bytes | None, *,
                      timeout: float) -> tuple[int, bytes]:
        if self.wanted(method, target) and not self.hit.is_set():
            self.tracer.stop()
            self.hit.set()
        self.seen.append((method, target))
        if self.ready_when(method, target):
            self.ready.set()
        if method == "POST" and target.startswith("/channels?"):
            return 200, b'{"id": "x"}'
        return 204, b""

    async def close(self) -> None:
        return None


class Websocket:
    """ARI's event websocket: one message, then nothing."""

    def __init__(self, message: dict[str, Any], tracer: Tracer) -> None:
        self.message, self.tracer = message, tracer
        self.sent = False

    async def receive(self) -> Any:
        if self.sent:
            await asyncio.Event().wait()
        self.sent = True
        self.tracer.start()  # from here: the event is ours
        return types.SimpleNamespace(type=aiohttp.WSMsgType.TEXT, data=json.dumps(self.message))


class Store:
    async def facts(self, users: tuple[str, ...]) -> dict[str, UserFacts]:
        return {u: UserFacts() for u in users}

    async def get_sticky(self, *_: Any) -> None:
        return None

    async def next_cursor(self, _key: str) -> int:
        return 0

    async def set_sticky(self, *_: Any) -> None:
        return None


FLOWS = FlowSet.model_validate({
    "settings": {"timezone": "UTC", "forward_to_alternate": True},
    "users": {"alice": {"endpoint": "agent1", "alternate": "sip:agent3"}},
    "departments": {"team": {"members": ["alice"], "ring_time": 20}},
    "flows": {
        "menu": {"dids": ["+15550100"], "entry": "m", "nodes": {
            "m": {"type": "menu", "prompt": "beep", "options": {"1": "bye"}, "fallback": "bye"},
            "bye": {"type": "hangup"}}},
        "ring": {"dids": ["+15550200"], "entry": "d", "nodes": {
            "d": {"type": "department", "department": "team", "fallback": "bye"},
            "bye": {"type": "hangup"}}},
    },
})


async def _hops(did: str, ready: Callable[[str, str], bool],
                message: Callable[[], dict[str, Any]],
                wanted: Callable[[str, str], bool]) -> Tracer:
    """Run a call on ``did`` until it made the request ``ready``, then deliver
    ``message`` on the websocket and trace it until the request ``wanted``."""
    tracer = Tracer()
    ctl = Controller(load_settings({}))
    http = Transport(tracer, ready)
    ctl.ari._rest = http
    ctl.store = Store()  # type: ignore[assignment]
    ctx = CallContext(call_id=CALLER, did=did, caller="+15551234567", flowset=FLOWS,
                      now=ctl.clock)
    call = Call(ctl, CALLER, ctx, 1)
    call.node = ctl.cluster.first.name
    ctl.calls[CALLER] = call
    sys.set_coroutine_origin_tracking_depth(64)
    task = asyncio.ensure_future(call.run())
    reader: asyncio.Future[Any] | None = None
    try:
        async with asyncio.timeout(10):
            await http.ready.wait()
            http.wanted = wanted
            stream = EventStream(ctl.ari, partial(ctl.on_node_event, call.node))
            reader = asyncio.ensure_future(stream._read(Websocket(message(), tracer)))
            await http.hit.wait()
    finally:
        sys.setprofile(None)
        sys.set_coroutine_origin_tracking_depth(0)
        call.abandoned = True  # not torn down: nothing real to end
        for t in (task, reader):
            if t is not None:
                t.cancel()
        await asyncio.gather(task, *(t for t in [reader] if t), return_exceptions=True)
        for t in list(ctl._tasks):
            t.cancel()
        await ctl.ari.close()
    return tracer


def _report(what: str, tracer: Tracer) -> list[str]:
    path = tracer.hops()
    hops = [p for p in path if not p.startswith("   [")]
    print(f"\n{what}: {len(hops)} hops")
    n = 0
    for p in path:
        if not p.startswith("   ["):
            n += 1
        print(f"  {n if not p.startswith('   [') else ' '}. {p}")
    chain = " ".join(path)
    side = [s for s in tracer.side_calls() if s.split(" -> ")[1].rsplit(".", 1)[-1] not in chain]
    print(f"  side calls by the path's frames (not counted): {', '.join(side) or 'none'}")
    return hops


def test_a_dtmf_digit_reaches_its_rest_request_in_at_most_5_hops() -> None:
    """A key during a prompt (barge-in) -> DELETE /playbacks/{id}."""

    def message() -> dict[str, Any]:
        return {"type": "ChannelDtmfReceived", "digit": "1", "duration_ms": 100,
                "channel": {"id": CALLER, "state": "Up"}}

    tracer = asyncio.run(_hops(
        "+15550100", lambda _m, t: "/play/" in t, message,
        lambda m, t: m == "DELETE" and t.startswith("/playbacks/")))
    hops = _report("DTMF digit -> DELETE /playbacks/{id}", tracer)
    assert hops[-1].endswith("adapters.ari.client.stop_playback")
    assert len(hops) <= LIMIT, hops


def test_a_486_reaches_the_alternates_originate_in_at_most_5_hops() -> None:
    """The primary's phone answers 486 (ChannelHangupRequest, cause 17) -> POST /channels
    for its alternate."""

    def message() -> dict[str, Any]:
        return {"type": "ChannelHangupRequest", "cause": 17,
                "channel": {"id": f"{CALLER}-L1", "state": "Ringing"}}

    tracer = asyncio.run(_hops(
        "+15550200", lambda _m, t: t.startswith("/channels?"), message,
        lambda m, t: m == "POST" and t.startswith("/channels?") and "L2" in t))
    hops = _report("486 -> POST /channels (the alternate)", tracer)
    assert hops[-1].endswith("adapters.ari.client.originate")
    assert len(hops) <= LIMIT, hops
