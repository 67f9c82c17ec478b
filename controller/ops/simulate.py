"""Dry-run a call through a flow set (``callctl simulate``, ``POST /simulate``): the same
interpreter as real calls (controller.core.interpreter) over a virtual call (:class:`SimPort`):
prompts hear a list of digits, nobody answers unless told, time is virtual."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from controller.core import engine
from controller.core.flows.schema import FlowSet
from controller.core.interpreter import Interpreter
from controller.core.model import (
    CallContext,
    Command,
    DialTarget,
    HttpResponse,
    Prompt,
    RingGroup,
    Stop,
    UserFacts,
)
from controller.core.port import (
    CallGone,
    Dtmf,
    LegAnswered,
    LegEnded,
    Originate,
    PlaybackEnded,
    RecordingEnded,
    Signal,
    Winner,
)
from controller.ops.timeline import describe

__all__ = ["BUSY_CAUSE", "Fate", "SimLookups", "SimPort", "simulate_flow"]

BUSY_CAUSE = 17
"""Q.850 cause of a phone that answers busy (SIP 486 Busy Here)."""

Fate = Literal["answer", "timeout", "no_contact"] | int
"""What a rung leg does: answers, rings until its ring time is over, cannot be reached (no
contact), or fails with a Q.850 cause (17: busy)."""


@dataclass
class SimLookups:
    """Where a simulation reads live state from (no writes). Defaults: nothing known."""

    facts: Callable[[tuple[str, ...]], Awaitable[dict[str, UserFacts]]] | None = None
    sticky: Callable[[str, str], Awaitable[str | None]] | None = None
    cursor: Callable[[str], Awaitable[int]] | None = None


@dataclass
class SimPort:
    """A call's Port on a virtual clock: nothing real happens. Each prompt that collects
    digits hears ``keys(prompt)`` once it has played; each leg rung does ``fate(group,
    leg)``; playbacks end at once; answers come ``answer_after`` s after the leg starts
    ringing. Use :meth:`observe` as the interpreter's observer."""

    start: float
    keys: Callable[[Prompt], str] = lambda _p: ""
    fate: Callable[[RingGroup, Originate], Fate] = lambda _g, _o: "timeout"
    lookups: SimLookups = field(default_factory=SimLookups)
    answer_after: float = 0.0
    call_id: str = "simulation"
    result: str = "unknown"
    leg_seq: int = 0
    waiting_on: tuple[str, str] | None = None
    remembered: dict[str, UserFacts] = field(default_factory=dict)
    commands: list[Command] = field(default_factory=list)
    rung: list[Originate] = field(default_factory=list)
    """Every leg rung, in order (alternates included)."""
    notes: list[str] = field(default_factory=list)
    hangup_cause: int | None = None
    t: float = 0.0
    _pending: list[tuple[float, int, Signal]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _keys: str | None = None
    _group: RingGroup | None = None
    _plays: int = 0

    def __post_init__(self) -> None:
        self.t = self.start

    def observe(self, cmd: Command) -> None:
        self.commands.append(cmd)
        if isinstance(cmd, Prompt):
            self._keys = self.keys(cmd) if cmd.max_digits > 0 else None
            if not cmd.media:  # nothing plays: the keys come at once
                self._type()
        elif isinstance(cmd, RingGroup):
            self._group = cmd

    def at(self, delay: float, sig: Signal) -> None:
        heapq.heappush(self._pending, (self.t + delay, next(self._seq), sig))

    def _type(self) -> None:
        for k in self._keys or "":
            self.at(0.0, Dtmf(k))
        self._keys = None

    # ------------------------------------------------------------------ the Port

    def now(self) -> float:
        return self.t

    async def next_event(self, deadline: float | None) -> Signal | None:
        if self._pending and (deadline is None or self._pending[0][0] <= deadline):
            when, _, sig = heapq.heappop(self._pending)
            self.t = max(self.t, when)
            return sig
        if deadline is None:
            raise CallGone  # nothing will ever happen: the caller gives up
        self.t = max(self.t, deadline)
        return None

    async def answer(self) -> None:
        return None

    def ringing(self) -> None:
        return None

    async def hangup(self, cause: int) -> None:
        self.hangup_cause = cause

    async def play(self, media: Sequence[str], language: str) -> str:
        self._plays += 1
        pb = f"{self.call_id}-P{self._plays}"
        self.at(0.0, PlaybackEnded(pb))
        self._type()
        return pb

    def stop_playback(self, playback_id: str) -> None:
        return None

    def recording_name(self, mailbox: str) -> str:
        self.notes.append(f"records a message into mailbox {mailbox}")
        return "(simulated)"

    async def record(self, name: str, *, max_seconds: int, beep: bool,
                     terminate_on: str) -> None:
        self.at(0.0, RecordingEnded(name, duration=0.0))

    def stop_recording(self, name: str) -> None:
        return None

    async def media_state(self, kind: str, ident: str) -> str:
        return "gone"

    def media_lost(self, kind: str, ident: str, found_by: str) -> None:
        return None

    async def originate(self, legs: Sequence[Originate]) -> list[bool]:
        assert self._group is not None
        oks = []
        for leg in legs:
            self.rung.append(leg)
            fate = self.fate(self._group, leg)
            oks.append(fate != "no_contact")
            if fate == "answer":
                self.at(self.answer_after, LegAnswered(leg.leg_id))
            elif isinstance(fate, int):  # the phone rejects it at once (a 486: cause 17)
                self.at(0.0, LegEnded(leg.leg_id, fate, final=False))
                self.at(0.0, LegEnded(leg.leg_id, fate))
        return oks

    async def cancel(self, legs: Sequence[tuple[str, int | None]], wait: float) -> None:
        gone = {leg for leg, _ in legs}  # a cancelled leg does nothing more
        self._pending = [p for p in self._pending if getattr(p[2], "leg", None) not in gone]
        heapq.heapify(self._pending)

    def busy_here(self) -> set[str]:
        return set()

    async def claim(self, winner: Winner) -> bool:
        return True

    def claimed(self, winner: Winner, won: bool) -> None:
        return None

    async def connect(self, leg: str) -> None:
        return None

    def connected_with(self, target: DialTarget) -> None:
        return None

    async def facts(self, users: tuple[str, ...]) -> dict[str, UserFacts]:
        if self.lookups.facts is None:
            return {u: UserFacts() for u in users}
        return await self.lookups.facts(users)

    async def next_cursor(self, key: str) -> int:
        return 0 if self.lookups.cursor is None else await self.lookups.cursor(key)

    async def get_sticky(self, department: str, caller: str) -> str | None:
        if self.lookups.sticky is None:
            return None
        return await self.lookups.sticky(department, caller)

    def set_sticky(self, department: str, caller: str, user: str, ttl: int) -> None:
        return None

    def store_failed(self) -> None:
        return None

    def local_busy(self) -> set[str]:
        return set()

    def local_cursor(self, key: str) -> int:
        return 0

    async def http_post(self, url: str, payload: dict[str, Any],
                        timeout: float) -> HttpResponse:
        self.notes.append(f"POST {url} not sent in a simulation: taken as failed")
        return HttpResponse(0, None, "not sent (simulation)")


class _TooLong(Exception):
    pass


def _target(t: Any) -> dict[str, Any]:
    out = {"user": t.user, "address": t.address, "kind": t.kind, "role": t.role}
    if t.alternate is not None:
        out["alternate"] = _target(t.alternate)
    return out


async def simulate_flow(
    fs: FlowSet, *, did: str, caller: str, at: datetime, digits: Sequence[str] = (),
    answer: str | None = None, busy: Sequence[str] = (), lookups: SimLookups | None = None,
    failover_tests: frozenset[str] = frozenset(), max_commands: int = 5000,
) -> dict[str, Any]:
    """Walk the flow as a real call would. Prompts that collect digits take the next entry
    of ``digits`` (none left: no input); nobody answers a ring unless ``answer`` names a
    user (or address) in it, or is ``first`` (the first leg rung that is not busy); the
    phones of ``busy`` users (or these addresses) answer busy (486, cause 17), so their
    alternates ring, as in a real call. Time is virtual: rings, no-inputs and the gaps
    between digits take the time a real call would, so total timeouts and later time
    checks see it."""
    queue = list(digits)
    users = getattr(fs, "users", {}) or {}
    phones = {users[b].endpoint if b in users else b for b in busy}  # a user: their phone
    answered: set[int] = set()

    def keys(p: Prompt) -> str:
        d = queue.pop(0) if queue else ""
        prompts.append({"node": ctx.path[-1] if ctx.path else None, "media": list(p.media),
                        "digits": d})
        return d

    def fate(group: RingGroup, leg: Originate) -> Fate:
        t = leg.target
        rings[-1]["legs"].append({"user": t.user, "address": t.address, "kind": t.kind,
                                  "role": t.role})
        if t.address in phones:
            return BUSY_CAUSE
        if answer and id(group) not in answered and \
                (answer == "first" or answer in (t.user, t.address)):
            answered.add(id(group))
            return "answer"
        return "timeout"

    sim = SimPort(start=at.timestamp(), keys=keys, fate=fate, lookups=lookups or SimLookups())
    ctx = CallContext(call_id="simulation", did=did, caller=caller, flowset=fs,
                      now=lambda: at + timedelta(seconds=sim.t - sim.start),
                      failover_tests=failover_tests)
    prompts: list[dict[str, Any]] = []
    rings: list[dict[str, Any]] = []

    def observe(cmd: Command) -> None:
        if len(sim.commands) >= max_commands:
            raise _TooLong
        node = ctx.path[-1] if ctx.path else None
        if isinstance(cmd, Prompt) and cmd.max_digits == 0:
            prompts.append({"node": node, "media": list(cmd.media), "digits": None})
        elif isinstance(cmd, RingGroup):
            rings.append({"node": node, "timeout": cmd.timeout,
                          "targets": [_target(t) for t in cmd.targets],
                          "at": ctx.now().isoformat(timespec="seconds"), "legs": []})
        sim.observe(cmd)

    try:
        stop = await Interpreter(sim, ctx, observe).run(engine.run_call(ctx))
        result = stop.reason if isinstance(stop, Stop) else "end"
    except _TooLong:
        result = "loop_limit"
    except CallGone:
        result = "caller_hangup"
    trace = [{"at": t.at, "kind": t.kind, **t.data} for t in ctx.trace]
    first = rings[0]["targets"][0] if rings and rings[0]["targets"] else None
    return {
        "did": did, "caller": caller, "at": at.isoformat(timespec="minutes"),
        "result": result, "hangup_cause": sim.hangup_cause, "answered_by": ctx.answered_by,
        "path": list(ctx.path), "rings": rings, "first_ring": first,
        "ring_order": [o.target.user or o.target.address for o in sim.rung],
        "skips": [{k: v for k, v in t.items() if k != "at"} for t in trace
                  if t["kind"] == "skip"],
        "prompts": prompts, "notes": sim.notes, "digits_unused": queue,
        "steps": [describe(t) for t in trace], "trace": trace,
    }
