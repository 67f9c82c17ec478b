"""Drive sans-IO generators (nodes, the engine) with scripted results, no event loop.

    run = drive(engine.run_call(ctx), digits=["", "2"], http=[HttpResponse(200, {})])
    assert run.result == Stop("voicemail")
    assert [type(c) for c in run.commands] == [...]

Scripted queues are consumed by command type: ``digits`` by prompts that collect digits
(``max_digits > 0``; a plain play answers ``Digits("", "played")`` without consuming), ``http``
by HttpPost, ``ring`` by RingGroup, ``record`` by Record. An item may be a callable taking the
command. Empty queues answer: no digit (timeout), nobody answered, a 3 s recording; an
HttpPost with an empty queue fails the test.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from controller.core.flows.schema import FlowSet
from controller.core.model import (
    Answer,
    CallContext,
    Digits,
    GetSticky,
    Hangup,
    HttpPost,
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

MONDAY_NOON_UTC = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)


def make_ctx(
    flowset: FlowSet | None,
    did: str = "+15550100",
    *,
    now: datetime | Callable[[], datetime] = MONDAY_NOON_UTC,
    caller: str = "+15551234567",
    call_id: str = "call-1",
) -> CallContext:
    clock = now if callable(now) else (lambda: now)
    return CallContext(call_id=call_id, did=did, caller=caller, flowset=flowset, now=clock)


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


def answered(cmd: RingGroup) -> RingResult:
    """A RingGroup result: the first target answers."""
    t = cmd.targets[0]
    return RingResult(answered=t, legs=(LegResult(target=t, answered=True, cause=None),))


def no_answer(cmd: RingGroup) -> RingResult:
    legs = tuple(LegResult(target=t, answered=False, cause=None, timed_out=True)
                 for t in cmd.targets)
    return RingResult(answered=None, legs=legs)


@dataclass
class Run:
    commands: list[Any]
    result: Any
    finished: bool = True
    log: list[str] = field(default_factory=list)

    def of(self, kind: type) -> list[Any]:
        return [c for c in self.commands if isinstance(c, kind)]

    @property
    def prompts(self) -> list[Prompt]:
        return self.of(Prompt)


def _digits(item: Any) -> Digits:
    if isinstance(item, Digits):
        return item
    return Digits(item, "max" if item else "timeout")


def drive(
    gen: Generator[Any, Any, Any],
    *,
    digits: Iterable[Any] = (),
    http: Iterable[Any] = (),
    ring: Iterable[Any] = (),
    record: Iterable[Any] = (),
    facts: dict[str, UserFacts] | None = None,
    max_commands: int = 2000,
    stop_at: type | None = None,
) -> Run:
    """Run ``gen`` to completion answering each command; returns what it yielded and
    returned. ``stop_at``: close the generator (a caller hang-up) when it yields that type."""
    queues = {
        "digits": deque(digits), "http": deque(http), "ring": deque(ring),
        "record": deque(record),
    }

    def take(name: str, cmd: Any, default: Any) -> Any:
        q = queues[name]
        if not q:
            return default(cmd) if callable(default) else default
        item = q.popleft()
        return item(cmd) if callable(item) else item

    def answer(cmd: Any) -> Any:
        if isinstance(cmd, Prompt):
            if cmd.max_digits == 0:
                return Digits("", "played")
            return _digits(take("digits", cmd, ""))
        if isinstance(cmd, HttpPost):
            if not queues["http"]:
                raise AssertionError(f"unexpected {cmd!r}")
            return take("http", cmd, None)
        if isinstance(cmd, RingGroup):
            return take("ring", cmd, no_answer)
        if isinstance(cmd, Record):
            return take("record", cmd, Recorded(cmd.mailbox, f"voicemail/{cmd.mailbox}/m1",
                                                 3.0, "finished"))
        if isinstance(cmd, LoadFacts):
            return {u: (facts or {}).get(u, UserFacts()) for u in cmd.users}
        if isinstance(cmd, NextCursor):
            return 0
        if isinstance(cmd, Answer | Indicate | Hangup | GetSticky | SetSticky):
            return None
        raise AssertionError(f"unknown command {cmd!r}")

    commands: list[Any] = []
    try:
        cmd = gen.send(None)
        while True:
            commands.append(cmd)
            if stop_at is not None and isinstance(cmd, stop_at):
                gen.close()
                return Run(commands, None, finished=False)
            if len(commands) > max_commands:
                raise AssertionError(f"more than {max_commands} commands: a loop?")
            cmd = gen.send(answer(cmd))
    except StopIteration as stop:
        return Run(commands, stop.value)
