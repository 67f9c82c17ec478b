"""The command interpreter: runs a call's flow (the engine's Commands) against a Port.

The one interpreter of the command protocol (controller.core.model): the live call
(``controller.shell.call``), ``callctl simulate`` (``controller.ops.simulate``) and the unit
tests' scripted port (``tests/unit/drive.py``) all run calls through it, so they cannot
drift. Every decision is made here or in the state machine a command's driver runs:

- ``Prompt``: :func:`controller.core.collect.prompt` (digit collection, media bounds);
- ``RingGroup``: :func:`controller.core.ringrace.ring` (the ring race: claim, losers
  cancelled with cause 26 first, then answer and bridge; alternates);
- ``Record``: the recording and its bound (below); a caller hanging up ends the message;
- ``LoadFacts``/``NextCursor``/``GetSticky``: the Redis-down policy: the last facts read with
  "busy" from this controller's own calls, a local round-robin cursor, only the sticky
  agents this controller set while Redis was away (the port answers those itself);
- ``Hangup``: the caller is hung up and the flow closed (its generator gets GeneratorExit).

Each driver sits next to its pure state machine (collect.py, ringrace.py): a newcomer finds
how digits are collected, or how a ring runs, in one file, and an event goes from the call's
inbox straight into the machine that decides on it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Generator
from typing import Any

from controller.core import waits
from controller.core.collect import Bound, GaveUp, act, prompt
from controller.core.model import (
    Answer,
    CallContext,
    Command,
    GetSticky,
    Hangup,
    HttpPost,
    Indicate,
    LoadFacts,
    NextCursor,
    Prompt,
    Record,
    Recorded,
    RingGroup,
    SetSticky,
    Stop,
    UserFacts,
)
from controller.core.port import (
    CallGone,
    LegAnswered,
    LegEnded,
    LegLeft,
    Port,
    RecordingEnded,
    Unavailable,
)
from controller.core.ringrace import ring

__all__ = ["HANGUP_TAIL_S", "Interpreter"]

log = logging.getLogger("callctl.call")

HANGUP_TAIL_S = 2.0
"""A caller who hung up during a recording: how long its end event is awaited (Asterisk
keeps the file and reports its length)."""


class Interpreter:
    """Run one call's commands against ``port``; ``observe`` sees each command first (the
    simulation and the tests record them; raising CallGone there hangs the call up)."""

    def __init__(self, port: Port, ctx: CallContext,
                 observe: Callable[[Command], None] | None = None) -> None:
        self.port = port
        self.ctx = ctx
        self.observe = observe

    async def run(self, gen: Generator[Any, Any, Any]) -> Any:
        """Drive ``gen`` (``engine.run_call``, or a node) to its end; returns what it
        returns. A Hangup ends it with ``Stop("hangup")``; CallGone (the caller left)
        propagates."""
        try:
            cmd = gen.send(None)
            while True:
                if self.observe is not None:
                    self.observe(cmd)
                if isinstance(cmd, Hangup):
                    await self.port.hangup(cmd.cause)
                    return Stop("hangup")
                cmd = gen.send(await self.execute(cmd))
        except StopIteration as stop:
            return stop.value
        finally:
            gen.close()

    async def execute(self, cmd: Any) -> Any:
        p = self.port
        if isinstance(cmd, Prompt):
            return await prompt(p, cmd, self.ctx)
        if isinstance(cmd, RingGroup):
            return await ring(p, cmd, self.ctx)
        if isinstance(cmd, LoadFacts):
            return await self._facts(cmd)
        if isinstance(cmd, NextCursor):
            try:
                return await p.next_cursor(cmd.key)
            except Unavailable as e:
                self._degraded(e, "round-robin continues locally")
                return p.local_cursor(cmd.key)
        if isinstance(cmd, GetSticky):
            try:
                return await p.get_sticky(cmd.department, cmd.caller)
            except Unavailable as e:
                self._degraded(e, "no sticky agent this time")
                return None
        if isinstance(cmd, SetSticky):
            return p.set_sticky(cmd.department, cmd.caller, cmd.user, cmd.ttl)
        if isinstance(cmd, Record):
            return await self._record(cmd)
        if isinstance(cmd, HttpPost):
            return await p.http_post(cmd.url, cmd.payload, cmd.timeout)
        if isinstance(cmd, Answer):
            return await p.answer()
        if isinstance(cmd, Indicate):
            # ringback goes once the first INVITE of the ring is on its way (never delaying
            # it); a flow that answers instead (a prompt) needs none
            return p.ringing()
        raise TypeError(f"unknown command {cmd!r}")

    # ------------------------------------------------------------------ the store

    async def _facts(self, cmd: LoadFacts) -> dict[str, UserFacts]:
        p = self.port
        try:
            facts = await p.facts(cmd.users)
        except Unavailable as e:
            self._degraded(e, "routing on last known user state")
            # Degraded: the last facts read, with "busy" from this controller's own calls
            # (a busy mark read before the outage may be stale; ours are current).
            busy = p.local_busy()
            return {u: dataclasses.replace(p.remembered.get(u, UserFacts()), busy=u in busy)
                    for u in cmd.users}
        p.remembered.update(facts)
        return facts

    def _degraded(self, e: Exception, then: str) -> None:
        log.warning("call %s: %s; %s", self.port.call_id, e, then)
        self.port.store_failed()

    # ------------------------------------------------------------------ recording

    async def _record(self, cmd: Record) -> Recorded:
        p = self.port
        name = p.recording_name(cmd.mailbox)  # ValueError: not a valid mailbox
        await p.answer()
        self.ctx.log("voicemail", mailbox=cmd.mailbox, recording=name)
        await p.record(name, max_seconds=cmd.max_seconds, beep=cmd.beep,
                       terminate_on=cmd.terminate_on or "none")
        # Bounded: a lost RecordingFinished never holds the call (controller.core.waits).
        bound = Bound(name, p.now() + waits.record_bound(cmd.max_seconds))
        p.waiting_on = ("recording", name)
        try:
            while True:
                sig = await p.next_event(bound.at)
                if sig is None:
                    bound.reached()
                    over, actions = bound.checked(await p.media_state("recording", name),
                                                  p.now())
                    for a in actions:
                        act(p, self.ctx, "recording", a)
                    if isinstance(actions[-1], GaveUp):
                        self.ctx.log("media_stopped", media="recording", id=name,
                                     reason="no end event")
                        p.stop_recording(name)
                    if over:
                        return Recorded(cmd.mailbox, name, 0.0, "finished")  # length unknown
                elif isinstance(sig, RecordingEnded) and sig.name == name:
                    return Recorded(cmd.mailbox, name, sig.duration or 0.0,
                                    "failed" if sig.failed else "finished")
        except CallGone:
            pass
        finally:
            p.waiting_on = None
        # Hanging up is how callers usually end a message: Asterisk keeps the file and still
        # reports the recording's end. The call is a voicemail, not a lost call.
        p.result = "voicemail"
        deadline = p.now() + HANGUP_TAIL_S
        while True:
            try:
                sig = await p.next_event(deadline)
            except CallGone:
                continue
            if sig is None:
                return Recorded(cmd.mailbox, name, 0.0, "hangup")
            if isinstance(sig, RecordingEnded) and sig.name == name:
                return Recorded(cmd.mailbox, name, sig.duration or 0.0,
                                "failed" if sig.failed else "hangup")

    # ------------------------------------------------------------------ connected

    async def connected(self, leg: str | None) -> None:
        """Bridged with ``leg``: until it hangs up (CallGone: the caller did). A late leg
        answering meanwhile is hung up."""
        p = self.port
        while True:
            sig = await p.next_event(None)
            if isinstance(sig, LegLeft | LegEnded) and sig.leg == leg and \
                    (isinstance(sig, LegLeft) or sig.final):
                p.result = "completed"
                return
            if isinstance(sig, LegAnswered) and sig.leg != leg:
                await p.cancel([(sig.leg, None)], 0)  # a late, stray leg
