"""Digit collection: one ``Prompt`` played and its keys collected. Pure, no I/O.

:class:`Collector` is the state machine (like :class:`controller.core.ringrace.RingRace`):
fed what happened (the playback finished, a key, the deadline passed, the answer to "is the
playback still going?") with the time, it returns what to do (stop the playback, ask about
it, log, done with ``Digits``). All the rules live here:

- with ``barge_in`` a key during the playback stops it and counts as the first key;
  without, keys during the playback are ignored;
- after the playback the caller has ``timeout`` s for the first key and
  ``inter_digit_timeout`` s between keys; the wait ending gives what was typed
  (``"timeout"``);
- the ``terminator`` ends the input (not part of it); ``max_digits`` keys end it too;
- a ``sensitive`` prompt (a PIN) logs each key masked;
- a play-only prompt (``max_digits == 0``) ignores keys and ends with the playback;
- the playback's end event may be lost (controller.core.waits): at the bound the Port is
  asked whether the playback still goes; gone, it counts as finished; still going, the
  wait gets ``waits.RECHECK_S`` more, at most ``waits.MAX_RECHECKS`` times, then the
  playback is stopped and the prompt goes on.

Once done it answers nothing more. :func:`prompt` runs one against a Port.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from controller.core import prompts, waits
from controller.core.model import CallContext, Digits, Prompt
from controller.core.port import Dtmf, PlaybackEnded, Port

__all__ = ["Bound", "Check", "Collector", "Done", "GaveUp", "Lost", "Stop", "Trace",
           "Waiting", "prompt"]

log = logging.getLogger("callctl.call")


# ------------------------------------------------------------------------------ actions


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop the playback."""

    playback_id: str


@dataclass(frozen=True, slots=True)
class Check:
    """The wait reached its bound: ask whether the media still goes; feed the answer back
    (``Collector.checked``)."""

    ident: str


@dataclass(frozen=True, slots=True)
class Lost:
    """The media is gone and its end event never came (logged and counted)."""

    ident: str


@dataclass(frozen=True, slots=True)
class Waiting:
    """Still going (or not known) at the bound: waiting ``seconds`` more."""

    ident: str
    answer: str
    seconds: float


@dataclass(frozen=True, slots=True)
class GaveUp:
    """No end event ``after`` s past the bound: the media is stopped, the call goes on."""

    ident: str
    answer: str
    after: float


@dataclass(frozen=True, slots=True)
class Trace:
    """A trace entry for the call."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Done:
    digits: Digits


Action = Stop | Check | Lost | Waiting | GaveUp | Trace | Done


# ------------------------------------------------------------------------------ bound


@dataclass(slots=True)
class Bound:
    """A wait for a media end event that may be lost: its bound and the checks made."""

    ident: str
    at: float
    checks: int = 0
    asking: bool = False

    def reached(self) -> list[Action]:
        self.asking = True
        return [Check(self.ident)]

    def checked(self, answer: str, now: float) -> tuple[bool, list[Action]]:
        """The answer to ``Check``: (the media is over, what to do)."""
        self.asking = False
        if answer == "gone":
            return True, [Lost(self.ident)]
        if self.checks < waits.MAX_RECHECKS:
            self.checks += 1
            self.at = now + waits.RECHECK_S
            return False, [Waiting(self.ident, answer, waits.RECHECK_S)]
        return True, [GaveUp(self.ident, answer, self.checks * waits.RECHECK_S)]


# ------------------------------------------------------------------------------ collector


@dataclass(slots=True)
class Collector:
    cmd: Prompt
    playback_id: str | None
    """The prompt's playback (None: nothing to play)."""
    now: float
    bound: float = 0.0
    """How long the playback may take before its end event counts as lost."""
    digits: str = ""
    playing: bool = False
    done: bool = False
    result: Digits | None = None
    deadline: float | None = None
    """When ``expired`` is due (None: no deadline)."""
    _bound: Bound | None = None

    def start(self) -> list[Action]:
        self.playing = self.playback_id is not None
        if self.playing:
            assert self.playback_id is not None
            self._bound = Bound(self.playback_id, self.now + self.bound)
            self.deadline = self._bound.at
            return []
        if self.cmd.max_digits == 0:
            return self._done("played")
        self.deadline = self.now + self.cmd.timeout
        return []

    # ------------------------------------------------------------------ inputs

    def played(self, now: float) -> list[Action]:
        """The prompt's playback finished (also: a duplicate, or after a barge-in)."""
        if self.done or not self.playing:
            return []
        return self._played(now)

    def digit(self, key: str, now: float) -> list[Action]:
        if self.done or self.cmd.max_digits == 0:
            return []
        out: list[Action] = []
        if self.playing:
            if not self.cmd.barge_in:
                return []
            assert self.playback_id is not None
            self.playing, self._bound = False, None
            out.append(Stop(self.playback_id))
        # a PIN or an account number: never in the trace
        out.append(Trace("dtmf", {"masked": True} if self.cmd.sensitive else {"digit": key}))
        if self.cmd.terminator and key == self.cmd.terminator:
            return out + self._done("terminator")
        self.digits += key
        if len(self.digits) >= self.cmd.max_digits:
            return out + self._done("max")
        self.deadline = now + self.cmd.inter_digit_timeout
        return out

    def expired(self, now: float) -> list[Action]:
        """``deadline`` passed with nothing heard."""
        if self.done:
            return []
        if self.playing:
            assert self._bound is not None
            if self._bound.asking:
                return []
            self.deadline = None
            return self._bound.reached()
        return self._done("timeout")

    def checked(self, answer: str, now: float) -> list[Action]:
        """The Port's answer to ``Check``: "gone", "going" or "not known (...)"."""
        b = self._bound
        if self.done or not self.playing or b is None or not b.asking:
            return []
        over, out = b.checked(answer, now)
        if not over:
            self.deadline = b.at
            return out
        if isinstance(out[-1], GaveUp):
            assert self.playback_id is not None
            out += [Trace("media_stopped", {"media": "playback", "id": self.playback_id,
                                            "reason": "no end event"}),
                    Stop(self.playback_id)]
        return out + self._played(now)

    # ------------------------------------------------------------------ helpers

    def _played(self, now: float) -> list[Action]:
        self.playing, self._bound = False, None
        if self.cmd.max_digits == 0:
            return self._done("played")
        wait = self.cmd.inter_digit_timeout if self.digits else self.cmd.timeout
        self.deadline = now + wait
        return []

    def _done(self, reason: Any) -> list[Action]:
        self.done, self.deadline = True, None
        self.result = Digits(self.digits, reason)
        return [Done(self.result)]


# ------------------------------------------------------------------------------ driver


async def prompt(port: Port, cmd: Prompt, ctx: CallContext) -> Digits:
    """Play ``cmd`` to the caller and collect its keys (answering the caller first)."""
    await port.answer()
    pb: str | None = None
    if cmd.media:
        pb = await port.play(cmd.media, ctx.language)
        # which files Asterisk plays (controller.core.prompts): ops see it in `callctl call`
        ctx.log("prompt", node=ctx.path[-1] if ctx.path else None, media=list(cmd.media),
                files=prompts.media_files(cmd.media, ctx.language), playback=pb)
    # bounded: a lost PlaybackFinished never holds the call (controller.core.waits)
    bound = waits.prompt_bound(waits.media_seconds(m, ctx.language) for m in cmd.media) \
        if pb else 0.0
    c = Collector(cmd, pb, port.now(), bound)
    actions = c.start()
    try:
        while True:
            for a in actions:
                if isinstance(a, Check):
                    answer = await port.media_state("playback", a.ident)
                    actions.extend(c.checked(answer, port.now()))
                else:
                    act(port, ctx, "playback", a)
            if c.result is not None:
                return c.result
            port.waiting_on = ("playback", pb) if c.playing and pb else None
            sig = await port.next_event(c.deadline)
            now = port.now()
            if sig is None:
                actions = c.expired(now)
            elif isinstance(sig, Dtmf):
                actions = c.digit(sig.digit, now)
            elif isinstance(sig, PlaybackEnded) and sig.playback_id == pb:
                actions = c.played(now)
            else:
                actions = []
    finally:
        port.waiting_on = None


def act(port: Port, ctx: CallContext, kind: str, a: Action) -> None:
    """Carry out an action that needs no answer (``kind``: "playback" or "recording")."""
    if isinstance(a, Stop):
        port.stop_playback(a.playback_id)
    elif isinstance(a, Trace):
        ctx.log(a.kind, **a.data)
    elif isinstance(a, Lost):
        port.media_lost(kind, a.ident, "bound")
    elif isinstance(a, Waiting):
        log.info("call %s: %s %s: no end event at its bound; ARI: %s; waiting %.0f s more",
                 port.call_id, kind, a.ident, a.answer, a.seconds)
    elif isinstance(a, GaveUp):
        log.error("call %s: %s %s: no end event %d s after its bound (ARI: %s): stopping it "
                  "and going on", port.call_id, kind, a.ident, a.after, a.answer)
