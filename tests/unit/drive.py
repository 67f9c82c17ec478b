"""Drive sans-IO generators (nodes, the engine) through the real interpreter, no event loop.

    run = drive(engine.run_call(ctx), digits=["", "2"], http=[HttpResponse(200, {})])
    assert run.result == Stop("voicemail")
    assert [type(c) for c in run.commands] == [...]

The call runs in :class:`controller.core.interpreter.Interpreter` (the one live calls and
``callctl simulate`` use) over a scripted Port (:class:`ScriptedPort`, the simulation's
virtual call with scripts): prompts hear keys, legs answer or fail, time is virtual. The
coroutine is stepped by hand: a scripted Port never waits, so no event loop runs.

Scripts:

- ``digits``: one item per prompt that collects digits (``max_digits > 0``; a plain play
  takes none): the keys the caller types once the prompt has played (``""``: none, the
  prompt times out). A ``Digits(keys, reason)`` item types ``keys`` and, for
  ``"terminator"``, the prompt's terminator. A callable item takes the Prompt.
- ``ring``: one item per RingGroup (missing: nobody answers): a mapping ``key -> spec`` or a
  callable ``(RingGroup) -> mapping``. ``key`` is the target's user (the failover target,
  which has none: ``"failover"``; a phone's own call: ``"primary"``); spec is ``"answer"``
  (``answer_after`` s after the leg starts ringing), ``"timeout"`` (the default),
  ``"no_contact"`` or a Q.850 cause (the phone rejects it at once), or a ``(primary,
  alternate)`` pair: what the target's alternate does when it rings.
- ``http``: one HttpResponse per HttpPost (an HttpPost with none left fails the test).
- ``facts`` (a mapping or ``(LoadFacts) -> mapping``), ``sticky``, ``cursor``.

``stop_at``: the caller hangs up when the flow asks for that command (not carried out).
:class:`Driver` is the same with the scripts given first (``Driver(ctx, ...).run(gen)``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Coroutine, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.core.flows.schema import FlowSet
from controller.core.interpreter import Interpreter
from controller.core.model import (
    CallContext,
    Command,
    Digits,
    HttpResponse,
    LoadFacts,
    Prompt,
    RingGroup,
    UserFacts,
)
from controller.core.port import CallGone, Originate, RecordingEnded, Signal
from controller.ops.simulate import Fate, SimLookups, SimPort

Spec = str | int
RingScript = Mapping[str, Spec | tuple[Spec, Spec]] | Callable[[RingGroup], Mapping[str, Any]]
MONDAY_NOON_UTC = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)


class Clock:
    """A settable clock for ``ctx.now``; a scripted call's virtual time moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        self.t = start or MONDAY_NOON_UTC

    def now(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


def make_ctx(
    flowset: FlowSet | None,
    did: str = "+15550100",
    *,
    now: datetime | Callable[[], datetime] = MONDAY_NOON_UTC,
    clock: Clock | None = None,
    caller: str = "+15551234567",
    call_id: str = "call-1",
) -> CallContext:
    when = clock.now if clock is not None else now if callable(now) else (lambda: now)
    return CallContext(call_id=call_id, did=did, caller=caller, flowset=flowset, now=when)


def flowset(data: dict[str, Any]) -> FlowSet:
    return FlowSet.model_validate(data)


def one_flow(nodes: dict[str, Any], entry: str | None = None, **extra: Any) -> FlowSet:
    """A flow set with flow ``main`` on ``+15550100``, users u1/u2, department team."""
    settings = extra.pop("settings", {})
    more_flows = extra.pop("more_flows", {})
    return flowset({
        "settings": settings,
        "users": {"u1": {"endpoint": "agent1"}, "u2": {"endpoint": "agent2"}},
        "departments": {"team": {"members": ["u1", "u2"]}},
        "flows": {
            "main": {"dids": ["+15550100"], "entry": entry or next(iter(nodes)),
                     "nodes": nodes, **extra},
            **more_flows,
        },
    })


def answered(rg: RingGroup) -> dict[str, Spec]:
    """A ring script: the first target answers."""
    t = rg.targets[0]
    return {t.user or t.role: "answer"}


def no_answer(_rg: RingGroup) -> dict[str, Spec]:
    return {}


def trace(ctx: CallContext, kind: str) -> list[dict[str, Any]]:
    return [e.data for e in ctx.trace if e.kind == kind]


@dataclass
class ScriptedPort(SimPort):
    """The simulation's virtual call, with recordings and HTTP answered from scripts."""

    http: deque[Any] = field(default_factory=deque)
    clock: Clock | None = None

    async def next_event(self, deadline: float | None) -> Signal | None:
        try:
            return await super().next_event(deadline)
        finally:
            if self.clock is not None:  # the context's clock follows the virtual time
                self.clock.t = datetime.fromtimestamp(self.t, self.clock.t.tzinfo)

    def recording_name(self, mailbox: str) -> str:
        return f"voicemail/{mailbox}/m1"

    async def record(self, name: str, *, max_seconds: int, beep: bool,
                     terminate_on: str) -> None:
        self.at(3.0, RecordingEnded(name, duration=3.0))

    async def http_post(self, url: str, payload: dict[str, Any],
                        timeout: float) -> HttpResponse:
        if not self.http:
            raise AssertionError(f"unexpected HttpPost to {url}")
        item = self.http.popleft()
        return item(url) if callable(item) else item


@dataclass
class Run:
    commands: list[Any]
    result: Any
    finished: bool = True
    port: ScriptedPort | None = None

    def of(self, kind: type) -> list[Any]:
        return [c for c in self.commands if isinstance(c, kind)]

    def kinds(self) -> list[str]:
        return [type(c).__name__ for c in self.commands]

    @property
    def prompts(self) -> list[Prompt]:
        return self.of(Prompt)


def _keys(item: Any, cmd: Prompt) -> str:
    if callable(item):
        item = item(cmd)
    if isinstance(item, Digits):
        return item.digits + (cmd.terminator if item.reason == "terminator" else "")
    return str(item)


def _fate(script: Mapping[str, Any], group: RingGroup, leg: Originate) -> Fate:
    """What ``leg`` does by ``script``: a primary by its key, an alternate by its primary's."""
    for t in group.targets:
        spec = script.get(t.user or t.role, "timeout")
        primary, alternate = spec if isinstance(spec, tuple) else (spec, "timeout")
        if (t.kind, t.address) == (leg.target.kind, leg.target.address) and \
                leg.target.role != "alternate":
            return primary  # type: ignore[no-any-return]
        alt = t.alternate
        if alt is not None and (alt.kind, alt.address) == (leg.target.kind, leg.target.address):
            return alternate  # type: ignore[no-any-return]
    return "timeout"


def step(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never waits (on a scripted Port) to its end, without a loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError("the interpreter waited on something real (not a scripted Port)")


def drive(
    gen: Generator[Any, Any, Any],
    ctx: CallContext | None = None,
    *,
    digits: Iterable[Any] = (),
    ring: Iterable[RingScript] = (),
    http: Iterable[Any] = (),
    facts: Mapping[str, UserFacts] | Callable[[LoadFacts], Mapping[str, UserFacts]] | None
    = None,
    sticky: str | None = None,
    cursor: int = 0,
    clock: Clock | None = None,
    answer_after: float = 3.0,
    max_commands: int = 2000,
    stop_at: type | None = None,
) -> Run:
    """Run ``gen`` to completion through the interpreter; returns what it yielded and
    returned. ``ctx``: the generator's context (default: its ``ctx`` argument)."""
    if ctx is None:
        ctx = gen.gi_frame.f_locals.get("ctx") if gen.gi_frame is not None else None
        assert isinstance(ctx, CallContext), "drive(gen, ctx): pass the call's context"
    keys, rings = deque(digits), deque(ring)
    scripts: dict[int, Mapping[str, Any]] = {}

    def typed(cmd: Prompt) -> str:
        return _keys(keys.popleft(), cmd) if keys else ""

    def fate(group: RingGroup, leg: Originate) -> Fate:
        if id(group) not in scripts:
            s = rings.popleft() if rings else {}
            scripts[id(group)] = s(group) if callable(s) else s
        return _fate(scripts[id(group)], group, leg)

    async def load(users: tuple[str, ...]) -> dict[str, UserFacts]:
        src = facts(LoadFacts(users)) if callable(facts) else (facts or {})
        return {u: src.get(u, UserFacts()) for u in users}

    async def get_sticky(_d: str, _c: str) -> str | None:
        return sticky

    async def next_cursor(_k: str) -> int:
        return cursor

    port = ScriptedPort(start=ctx.now().timestamp(), keys=typed, fate=fate,
                        lookups=SimLookups(facts=load, sticky=get_sticky, cursor=next_cursor),
                        answer_after=answer_after, call_id=ctx.call_id, http=deque(http),
                        clock=clock)

    def observe(cmd: Command) -> None:
        if len(port.commands) >= max_commands:
            raise AssertionError(f"more than {max_commands} commands: a loop?")
        port.observe(cmd)
        if stop_at is not None and isinstance(cmd, stop_at):
            raise CallGone  # the caller hangs up

    try:
        result = step(Interpreter(port, ctx, observe).run(gen))
    except CallGone:
        return Run(port.commands, None, finished=False, port=port)
    return Run(port.commands, result, port=port)


@dataclass
class Driver:
    """``drive`` with the scripts given first: ``Driver(ctx, ring=[...]).run(gen)``; then
    ``.commands``, ``.of(kind)``, ``.kinds()`` as on a Run."""

    ctx: CallContext
    clock: Clock | None = None
    facts: Mapping[str, UserFacts] | Callable[[LoadFacts], Mapping[str, UserFacts]] = field(
        default_factory=dict)
    sticky: str | None = None
    cursor: int = 0
    ring: list[RingScript] = field(default_factory=list)
    digits: list[Any] = field(default_factory=list)
    answer_after: float = 3.0
    last: Run | None = None

    def run(self, gen: Generator[Any, Any, Any]) -> Any:
        self.last = drive(gen, self.ctx, digits=self.digits, ring=self.ring, facts=self.facts,
                          sticky=self.sticky, cursor=self.cursor, clock=self.clock,
                          answer_after=self.answer_after)
        return self.last.result

    @property
    def commands(self) -> list[Any]:
        return self.last.commands if self.last else []

    def of(self, kind: type) -> list[Any]:
        return [c for c in self.commands if isinstance(c, kind)]

    def kinds(self) -> list[str]:
        return [type(c).__name__ for c in self.commands]
