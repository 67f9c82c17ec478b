"""Dry-run a call through a flow set (``callctl simulate``, ``POST /simulate``): the same engine
as real calls, with prompts answered from a list of digits and nobody answering unless told."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from controller.core import engine
from controller.core.flows.schema import FlowSet
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
    Stop,
    UserFacts,
)
from controller.ops.timeline import describe

__all__ = ["SimLookups", "simulate_flow"]


@dataclass
class SimLookups:
    """Where a simulation reads live state from (no writes). Defaults: nothing known."""

    facts: Callable[[tuple[str, ...]], Awaitable[dict[str, UserFacts]]] | None = None
    sticky: Callable[[str, str], Awaitable[str | None]] | None = None
    cursor: Callable[[str], Awaitable[int]] | None = None


@dataclass
class _Sim:
    rings: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    prompts: list[dict[str, Any]] = field(default_factory=list)


def _target(t: Any) -> dict[str, Any]:
    out = {"user": t.user, "address": t.address, "kind": t.kind, "role": t.role}
    if t.alternate is not None:
        out["alternate"] = _target(t.alternate)
    return out


async def simulate_flow(
    fs: FlowSet, *, did: str, caller: str, at: datetime, digits: Sequence[str] = (),
    answer: str | None = None, lookups: SimLookups | None = None,
    failover_tests: frozenset[str] = frozenset(), max_commands: int = 5000,
) -> dict[str, Any]:
    """Walk the flow with the engine. Prompts that collect digits take the next entry of
    ``digits`` (none left: no input); nobody answers a ring unless ``answer`` names a user
    (or address) in it, or is ``first``. Time advances by each ring's and no-input's timeout,
    so total timeouts and later time checks see the time a real call would."""
    lookups = lookups or SimLookups()
    clock = [at]
    ctx = CallContext(call_id="simulation", did=did, caller=caller, flowset=fs,
                      now=lambda: clock[0], failover_tests=failover_tests)
    sim = _Sim()
    queue = list(digits)
    gen = engine.run_call(ctx)
    result: str = "unknown"
    hangup_cause: int | None = None

    async def reply(cmd: Any) -> Any:
        nonlocal result, hangup_cause
        node = ctx.path[-1] if ctx.path else None
        if isinstance(cmd, Prompt):
            if cmd.max_digits == 0:
                sim.prompts.append({"node": node, "media": list(cmd.media), "digits": None})
                return Digits("", "played")
            d = queue.pop(0) if queue else ""
            sim.prompts.append({"node": node, "media": list(cmd.media), "digits": d})
            if not d:
                clock[0] += timedelta(seconds=cmd.timeout)
                return Digits("", "timeout")
            return Digits(d, "max")
        if isinstance(cmd, RingGroup):
            targets = [_target(t) for t in cmd.targets]
            sim.rings.append({"node": node, "timeout": cmd.timeout, "targets": targets,
                              "at": clock[0].isoformat(timespec="seconds")})
            win = None
            if answer:
                for t in cmd.targets:
                    if answer == "first" or answer in (t.user, t.address):
                        win = t
                        break
            if win is not None:
                legs = tuple(LegResult(target=t, answered=t is win, cause=None,
                                       cancelled=t is not win) for t in cmd.targets)
                return RingResult(answered=win, legs=legs)
            clock[0] += timedelta(seconds=cmd.timeout)
            return RingResult(answered=None, legs=tuple(
                LegResult(target=t, answered=False, cause=None, timed_out=True)
                for t in cmd.targets))
        if isinstance(cmd, LoadFacts):
            if lookups.facts is None:
                return {u: UserFacts() for u in cmd.users}
            return await lookups.facts(cmd.users)
        if isinstance(cmd, GetSticky):
            return None if lookups.sticky is None else await lookups.sticky(cmd.department,
                                                                            cmd.caller)
        if isinstance(cmd, NextCursor):
            return 0 if lookups.cursor is None else await lookups.cursor(cmd.key)
        if isinstance(cmd, Record):
            sim.notes.append(f"records a message into mailbox {cmd.mailbox}")
            return Recorded(cmd.mailbox, "(simulated)", 0.0, "finished")
        if isinstance(cmd, HttpPost):
            sim.notes.append(f"POST {cmd.url} not sent in a simulation: taken as failed")
            return HttpResponse(0, None, "not sent (simulation)")
        if isinstance(cmd, Hangup):
            hangup_cause = cmd.cause
            return None
        if isinstance(cmd, Answer | Indicate | SetSticky):
            return None
        raise TypeError(f"unknown command {cmd!r}")

    n = 0
    try:
        cmd = gen.send(None)
        while True:
            n += 1
            if n > max_commands:
                result = "loop_limit"
                break
            res = await reply(cmd)
            if isinstance(cmd, Hangup):  # the runtime hangs up and the flow is over
                result = "hangup"
                break
            cmd = gen.send(res)
    except StopIteration as stop:
        result = stop.value.reason if isinstance(stop.value, Stop) else "end"
    finally:
        gen.close()
    trace = [{"at": t.at, "kind": t.kind, **t.data} for t in ctx.trace]
    first = sim.rings[0]["targets"][0] if sim.rings and sim.rings[0]["targets"] else None
    return {
        "did": did, "caller": caller, "at": at.isoformat(timespec="minutes"),
        "result": result, "hangup_cause": hangup_cause, "answered_by": ctx.answered_by,
        "path": list(ctx.path), "rings": sim.rings, "first_ring": first,
        "ring_order": [t.get("user") or t.get("address")
                       for r in sim.rings for t in r["targets"]],
        "skips": [{k: v for k, v in t.items() if k != "at"} for t in trace
                  if t["kind"] == "skip"],
        "prompts": sim.prompts, "notes": sim.notes, "digits_unused": queue,
        "steps": [describe(t) for t in trace], "trace": trace,
    }
