"""A scripted driver for the sans-IO node generators (no event loop, no network).

``Driver`` answers each yielded command from a script and records every command::

    d = Driver(ctx, facts={"alice": UserFacts(busy=True)}, ring=[{"bob": "answer"}])
    outcome = d.run(department.run(node, ctx))
    d.of(RingGroup)  # the RingGroups yielded, in order

Ring scripts: one entry per RingGroup, in order (missing entries: nobody answers). An entry is
a callable ``(RingGroup) -> RingResult`` or a mapping ``user -> spec`` simulated by
:func:`simulate`; spec is ``"answer"``, ``"timeout"``, ``"no_contact"`` or a Q.850 cause, or a
``(primary, alternate)`` pair. The failover target (no user) is keyed ``"failover"``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.core.model import (
    Answer,
    CallContext,
    Digits,
    GetSticky,
    Hangup,
    HttpPost,
    HttpResponse,
    Indicate,
    LegResult,
    LoadFacts,
    NextCursor,
    Prompt,
    Record,
    Recorded,
    RingGroup,
    RingResult,
    SetSticky,
    UserFacts,
)

Spec = str | int
RingScript = Mapping[str, Spec | tuple[Spec, Spec]] | Callable[[RingGroup], RingResult]


class Clock:
    def __init__(self, start: datetime | None = None) -> None:
        self.t = start or datetime(2025, 6, 2, 12, 0, tzinfo=UTC)  # a Monday

    def now(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


def make_ctx(flowset: Any, *, caller: str = "+15550001111", did: str = "+15559990000",
             clock: Clock | None = None) -> CallContext:
    clock = clock or Clock()
    return CallContext(call_id="c1", did=did, caller=caller, flowset=flowset, now=clock.now)


def _leg(target: Any, spec: Spec, *, alt: bool) -> LegResult:
    if spec == "answer":
        return LegResult(target, True, None, via_alternate=alt)
    if spec == "timeout":
        return LegResult(target, False, None, timed_out=True, via_alternate=alt)
    if spec == "no_contact":
        return LegResult(target, False, None, no_contact=True, via_alternate=alt)
    assert isinstance(spec, int), spec
    return LegResult(target, False, spec, via_alternate=alt)


def simulate(rg: RingGroup, script: Mapping[str, Spec | tuple[Spec, Spec]]) -> RingResult:
    """Play ``rg`` like the runtime's ring race would, from per-user specs (default timeout)."""
    legs: list[LegResult] = []
    for t in rg.targets:
        spec = script.get(t.user or t.role, "timeout")
        primary, alternate = spec if isinstance(spec, tuple) else (spec, "timeout")
        legs.append(_leg(t, primary, alt=False))
        if t.alternate is None:
            continue
        rings_alt = (
            (isinstance(primary, int) and primary in rg.alternate_causes)
            or (primary == "no_contact" and rg.alternate_on_no_contact)
            or (primary == "timeout" and rg.alternate_on_timeout)
        )
        if rings_alt:
            legs.append(_leg(t.alternate, alternate, alt=True))
    winner = next((leg for leg in legs if leg.answered), None)
    if winner is None:
        return RingResult(None, tuple(legs))
    out = []
    for leg in legs:
        if leg is not winner and (leg.answered or leg.timed_out):
            leg = LegResult(leg.target, False, None, cancelled=True,
                            via_alternate=leg.via_alternate)
        out.append(leg)
    return RingResult(winner.target, tuple(out))


@dataclass
class Driver:
    ctx: CallContext
    clock: Clock | None = None
    facts: Mapping[str, UserFacts] | Callable[[LoadFacts], Mapping[str, UserFacts]] = field(
        default_factory=dict)
    sticky: str | None = None
    cursor: int = 0
    ring: list[RingScript] = field(default_factory=list)
    digits: list[Digits] = field(default_factory=list)
    answer_after: float = 3.0  # seconds a RingGroup takes when someone answers
    commands: list[Any] = field(default_factory=list)
    _ring_i: int = 0

    def of(self, kind: type) -> list[Any]:
        return [c for c in self.commands if isinstance(c, kind)]

    def kinds(self) -> list[str]:
        return [type(c).__name__ for c in self.commands]

    def respond(self, cmd: Any) -> Any:
        if isinstance(cmd, LoadFacts):
            src = self.facts(cmd) if callable(self.facts) else self.facts
            return {u: src.get(u, UserFacts()) for u in cmd.users}
        if isinstance(cmd, GetSticky):
            return self.sticky
        if isinstance(cmd, NextCursor):
            return self.cursor
        if isinstance(cmd, RingGroup):
            script = self.ring[self._ring_i] if self._ring_i < len(self.ring) else {}
            self._ring_i += 1
            res = script(cmd) if callable(script) else simulate(cmd, script)
            if self.clock is not None:
                self.clock.advance(self.answer_after if res.answered else cmd.timeout)
            return res
        if isinstance(cmd, Prompt):
            return self.digits.pop(0) if self.digits else Digits("", "played")
        if isinstance(cmd, Record):
            return Recorded(cmd.mailbox, f"{cmd.mailbox}-1", 7.0, "finished")
        if isinstance(cmd, HttpPost):
            return HttpResponse(200, {})
        if isinstance(cmd, SetSticky | Indicate | Answer | Hangup):
            return None
        raise AssertionError(f"unexpected command {cmd!r}")

    def run(self, gen: Generator[Any, Any, Any]) -> Any:
        """Run ``gen`` to completion; return its return value."""
        try:
            cmd = next(gen)
            while True:
                self.commands.append(cmd)
                cmd = gen.send(self.respond(cmd))
        except StopIteration as stop:
            return stop.value


def trace(ctx: CallContext, kind: str) -> list[dict[str, Any]]:
    return [e.data for e in ctx.trace if e.kind == kind]
