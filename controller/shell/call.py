"""One live call: the Port of the call interpreter over ARI and Redis.

The call's logic (prompts and digit collection, the ring race, recordings, the Redis-down
policy) is the interpreter's (controller.core.interpreter); a ``Call`` only moves bytes: it
turns the ARI events routed to it into the interpreter's signals (controller.core.port) and
its requests into ARI and Redis calls.

Each call has one task and one inbox queue; the controller routes every event about the call
(its own channel, its ringing legs, its playbacks) into that queue in websocket order, so a
call sees its events strictly in order and a slow call never delays another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from controller.adapters.ari.errors import AriError, NotFound
from controller.adapters.ari.events import (
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    Event,
    PlaybackFinished,
    RecordingFailed,
    RecordingFinished,
    StasisEnd,
    StasisStart,
)
from controller.adapters.redis import StoreUnavailable
from controller.core import engine
from controller.core.interpreter import Interpreter
from controller.core.model import (
    CallContext,
    HttpResponse,
    Stop,
    UserFacts,
)
from controller.core.patterns import DTMF_DIGITS as DTMF
from controller.core.patterns import MAILBOX_RE
from controller.core.port import (
    CallGone,
    Dtmf,
    LegAnswered,
    LegEnded,
    LegLeft,
    PlaybackEnded,
    RecordingEnded,
    Signal,
    Unavailable,
    Winner,
)
from controller.logs import CURRENT_CALL
from controller.shell.legs import Legs

if TYPE_CHECKING:
    from controller.shell.ports import CallHost

__all__ = ["Call", "CallGone"]

log = logging.getLogger("callctl.call")



class Call(Legs):
    """One live call (the interpreter's Port): its inbox, its lifecycle, its requests."""

    node: str = ""
    """The Asterisk node the call is on (controller.cluster.manager)."""
    abandoned: bool = False
    """Another controller drives this call now: end our task without touching the call."""
    ending: bool = False
    """The call is tearing down (its end is being written): finished here, never handed
    over."""
    stopping: bool = False
    """Torn down by a stopping controller (CALLCTL_ON_STOP=hangup), not by the caller: its
    synthetic StasisEnd leaves the caller up for the teardown to hang up."""
    task: asyncio.Task[None] | None = None
    """The task driving the call (``run`` or ``resume``): cancelled on a handover
    (controller.cluster.manager), which must not wait for the call's next event."""
    waiting_on: tuple[str, str] | None = None
    """The media whose end event the call waits for now: ("playback", id) or ("recording",
    name); the (re)connect resync checks it with ARI (its end may be lost)."""

    def __init__(self, ctl: CallHost, channel_id: str, ctx: CallContext, version: int) -> None:
        self.ctl = ctl
        self.ari = ctl.ari
        self.id = channel_id
        self.ctx = ctx
        self.version = version
        self.inbox: asyncio.Queue[Event] = asyncio.Queue()
        self.answered = False
        self.caller_up = True
        self.legs: set[str] = set()  # leg channels that may still exist (for teardown)
        self.leg_starts: set[str] = set()  # legs whose StasisStart reached us (answered)
        self.connected_leg: str | None = None
        """The leg claimed for the call (its user booked, the call recorded as connected)."""
        self.winner: Winner | None = None
        self.connecting = False
        """A leg answered and the call is being connected (claim, answer, bridge): a stop
        lets it finish (controller.cluster.manager: ``hand_over``)."""
        self._starts_queued = 0  # leg StasisStarts fed and not read yet
        self._quiet = asyncio.Event()  # set while not ``answering``
        self._quiet.set()
        self.bridge_id: str | None = None
        self._bridge_task: asyncio.Task[None] | None = None
        self._ring_pending = False
        self.busy_users: set[str] = set()
        self.leg_seq = 0
        self.play_seq = 0
        self.started = time.time()
        self.answered_at: float | None = None
        self.result = "unknown"
        self.interp = Interpreter(self, ctx)

    # ------------------------------------------------------------------ events

    def feed(self, ev: Event) -> None:
        if isinstance(ev, StasisStart) and ev.channel.id != self.id:
            self._starts_queued += 1
            self._quiet.clear()
        self.inbox.put_nowait(ev)

    @property
    def answering(self) -> bool:
        """A leg answered and the call is not connected with it yet: being connected, or
        its StasisStart still waiting in the inbox (and the call is not ending)."""
        return not self.ending and (self.connecting or self._starts_queued > 0)

    def _set_connecting(self, on: bool) -> None:
        self.connecting = on
        self._note()

    def _note(self) -> None:
        if self.answering:
            self._quiet.clear()
        else:
            self._quiet.set()

    async def settled(self) -> None:
        """Until no leg is answering (see ``answering``)."""
        while self.answering:
            await self._quiet.wait()

    async def next_event(self, deadline: float | None) -> Signal | None:
        """The next signal, or None at ``deadline`` (epoch). Raises CallGone on hangup."""
        while True:
            if deadline is None:
                ev = await self.inbox.get()
            else:
                remaining = deadline - time.time()
                if remaining <= 0 and self.inbox.empty():
                    return None
                try:
                    async with asyncio.timeout(max(remaining, 0)):
                        ev = await self.inbox.get()
                except TimeoutError:
                    return None
            sig = self._signal(ev)
            if sig is not None:
                return sig

    def _signal(self, ev: Event) -> Signal | None:
        """``ev`` as the interpreter's signal (None: nothing for it), keeping the call's
        channel bookkeeping. Raises CallGone when the caller's channel ends."""
        if isinstance(ev, ChannelDtmfReceived):
            return Dtmf(ev.digit) if ev.channel.id == self.id and ev.digit in DTMF else None
        if isinstance(ev, PlaybackFinished):
            return PlaybackEnded(ev.playback_id)
        if isinstance(ev, RecordingFinished | RecordingFailed):
            return RecordingEnded(ev.name, isinstance(ev, RecordingFailed), ev.duration)
        if isinstance(ev, StasisStart):
            if ev.channel.id == self.id:
                return None
            self._starts_queued -= 1
            self._note()
            return LegAnswered(ev.channel.id)
        if isinstance(ev, StasisEnd | ChannelDestroyed | ChannelHangupRequest):
            cid = ev.channel.id
            if cid == self.id:
                if not self.stopping:
                    self.caller_up = False
                raise CallGone
            if isinstance(ev, ChannelDestroyed):
                self.legs.discard(cid)
                return LegEnded(cid, ev.cause)
            if isinstance(ev, StasisEnd):
                return LegLeft(cid)
            return None if ev.soft else LegEnded(cid, ev.cause, final=False)
        return None

    # ------------------------------------------------------------------ main

    async def run(self) -> None:
        CURRENT_CALL.set(self.id)  # this task's context only: tags every log line of the call
        try:
            stop = await self.interp.run(engine.run_call(self.ctx))
            if not isinstance(stop, Stop):
                stop = Stop("end")
            if self.result == "unknown":
                self.result = stop.reason
            if stop.reason == "connected":
                await self.interp.connected(self.connected_leg)
            elif stop.reason == "no_flow":
                await self._hangup_caller(1)
        except CallGone:
            if self.result == "connected":  # the caller hung up a bridged call
                self.result = "completed"
            elif self.result == "unknown":
                self.result = "controller_stopped" if self.stopping else "caller_hangup"
        except Exception:
            log.exception("call %s: controller error; hanging up", self.id)
            self.result = "error"
        finally:
            await self._teardown()

    # ------------------------------------------------------------------ the Port

    @property
    def call_id(self) -> str:
        return self.id

    @property
    def remembered(self) -> dict[str, UserFacts]:
        return self.ctl.last_facts

    def now(self) -> float:
        return time.time()

    async def answer(self) -> None:
        if self.answered:
            return
        try:
            await self.ari.answer(self.id)
        except NotFound:
            self.caller_up = False
            raise CallGone from None
        self.answered = True
        self.answered_at = self.answered_at or time.time()
        if self.connected_leg is None:  # an agent's answer is logged once bridged (runtime)
            log.info("call %s: answered by the controller for the flow (node %s)", self.id,
                     self.ctx.path[-1] if self.ctx.path else "-")

    def ringing(self) -> None:
        # sent once the first INVITE of the ring is on its way (``_prepare``)
        if not self.answered:
            self._ring_pending = True

    async def hangup(self, cause: int) -> None:
        await self._hangup_caller(cause)

    async def play(self, media: Sequence[str], language: str) -> str:
        self.play_seq += 1
        pb_id = f"{self.id}-P{self.play_seq}"
        try:
            await self.ari.play(self.id, list(media), playback_id=pb_id, lang=language)
        except NotFound:
            self.caller_up = False
            raise CallGone from None
        return pb_id

    def stop_playback(self, playback_id: str) -> None:
        self.ctl.background(self.ari.stop_playback(playback_id))

    def recording_name(self, mailbox: str) -> str:
        if not MAILBOX_RE.fullmatch(mailbox):
            raise ValueError(f"invalid mailbox {mailbox!r}")
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        return f"voicemail/{mailbox}/{stamp}-{self.id}"

    async def record(self, name: str, *, max_seconds: int, beep: bool,
                     terminate_on: str) -> None:
        try:
            await self.ari.record(self.id, name=name, fmt="wav", max_duration=max_seconds,
                                  beep=beep, terminate_on=terminate_on)
        except NotFound:
            self.caller_up = False
            raise CallGone from None

    def stop_recording(self, name: str) -> None:
        self.ctl.background(self.ari.stop_recording(name))

    async def media_state(self, kind: str, ident: str) -> str:
        try:
            if kind == "playback":
                await self.ari.get_playback(ident)
            else:
                await self.ari.get_live_recording(ident)
            return "still going"
        except NotFound:
            return "gone"
        except AriError as e:
            return f"not known ({e})"

    def media_lost(self, kind: str, ident: str, found_by: str) -> None:
        self.ctl.media_event_lost(self, kind, ident, found_by)

    async def http_post(self, url: str, payload: dict[str, Any],
                        timeout: float) -> HttpResponse:
        return await self.ctl.http_post(url, payload, timeout)

    async def facts(self, users: tuple[str, ...]) -> dict[str, UserFacts]:
        try:
            return await self.ctl.store.facts(users)
        except StoreUnavailable as e:
            raise Unavailable(str(e)) from None

    async def next_cursor(self, key: str) -> int:
        try:
            return await self.ctl.store.next_cursor(key)
        except StoreUnavailable as e:
            raise Unavailable(str(e)) from None

    async def get_sticky(self, department: str, caller: str) -> str | None:
        try:
            return await self.ctl.store.get_sticky(department, caller)
        except StoreUnavailable as e:
            held = self.ctl.sticky_held(department, caller)  # set while Redis was away
            if held is not None:
                return held
            raise Unavailable(str(e)) from None

    def set_sticky(self, department: str, caller: str, user: str, ttl: int) -> None:
        self.ctl.background(self.ctl.write_sticky(department, caller, user, ttl))

    def store_failed(self) -> None:
        self.ctl.store_failed()

    def local_busy(self) -> set[str]:
        return self.ctl.local_busy()

    def local_cursor(self, key: str) -> int:
        return self.ctl.local_cursor(key)

    # ------------------------------------------------------------------ teardown

    async def _hangup_channel(self, channel_id: str, cause: int | None = None) -> None:
        try:
            await self.ari.hangup(channel_id, reason_code=cause)
        except NotFound:
            pass
        except AriError as e:
            log.warning("call %s: hangup of %s failed: %s", self.id, channel_id, e)

    async def _hangup_caller(self, cause: int = 16) -> None:
        if self.caller_up:
            self.caller_up = False
            await self._hangup_channel(self.id, cause)

    async def resume(self, add: Sequence[str] | None = None) -> None:
        """Drive an adopted call that was already connected (controller.cluster.manager): finish its
        connect if the previous controller could not (``add``: the channels missing from the
        bridge; the caller is answered unless it is up), wait for a hangup, then tear down
        as usual."""
        CURRENT_CALL.set(self.id)
        try:
            if add is not None or not self.answered:
                await self._join(self.connected_leg or "", add=add or ())
                log.info("call %s: connect finished after adoption", self.id)
            await self.interp.connected(self.connected_leg)
        except CallGone:
            if self.result == "connected":
                self.result = "completed"
        except Exception:
            log.exception("call %s: controller error; hanging up", self.id)
            self.result = "error"
        finally:
            await self._teardown()

    async def _teardown(self) -> None:
        if self.abandoned:  # adopted by another controller: not ours to end
            if self.ctl.calls.get(self.id) is self:
                del self.ctl.calls[self.id]
            return
        self.ending = True
        self._note()
        jobs = [self._hangup_channel(leg) for leg in self.legs]
        if self.caller_up:
            self.caller_up = False
            jobs.append(self._hangup_channel(self.id))
        await asyncio.gather(*jobs, return_exceptions=True)
        if self._bridge_task is not None:
            try:
                await self._bridge_task
            except Exception:
                self._bridge_task = None
            if self._bridge_task is not None:
                try:
                    await self.ari.destroy_bridge(self.bridge_id or "")
                except NotFound:
                    pass
                except AriError as e:
                    log.warning("call %s: bridge destroy failed: %s", self.id, e)
        await self.ctl.call_ended(self)
