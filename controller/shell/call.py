"""One live call: drives the pure engine and executes its commands on ARI and Redis.

Each call has one task and one inbox queue; the controller routes every event about the call
(its own channel, its ringing legs, its playbacks) into that queue in websocket order, so a
call sees its events strictly in order and a slow call never delays another.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from controller.adapters.ari.errors import AriError, AriUnavailable, NotFound
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
    channel_id_of,
)
from controller.adapters.redis import StoreUnavailable
from controller.core import engine, prompts, waits
from controller.core.callerid import presentable
from controller.core.model import (
    Answer,
    CallContext,
    DialTarget,
    Digits,
    GetSticky,
    Hangup,
    HttpPost,
    HttpResponse,
    Indicate,
    LoadFacts,
    NextCursor,
    Prompt,
    Record,
    Recorded,
    RingGroup,
    RingResult,
    SetSticky,
    Stop,
    TraceEntry,
    UserFacts,
)
from controller.core.patterns import DTMF_DIGITS as DTMF
from controller.core.patterns import MAILBOX_RE
from controller.core.ringrace import Cancel, Claim, Connect, Originate, RingRace
from controller.logs import CURRENT_CALL

if TYPE_CHECKING:
    from controller.shell.ports import CallHost

log = logging.getLogger("callctl.call")

TARGET_VAR = "CALLCTL_TARGET"
"""Channel variable set on every leg: whom it rings (``target_json``), so a controller that
adopts the call knows who answered it (controller.cluster.manager)."""
CANCEL_FIRST_S = 0.5
"""How long the caller's answer waits for the losing legs' hangups to be confirmed."""


def target_json(t: DialTarget) -> str:
    return json.dumps({"kind": t.kind, "address": t.address, "user": t.user, "role": t.role},
                      separators=(",", ":"))


def target_from_json(raw: str | None) -> DialTarget | None:
    """``target_json`` read back (None if missing or malformed)."""
    try:
        d = json.loads(raw or "")
        kind, role, user = d["kind"], d.get("role") or "primary", d.get("user") or None
        if kind not in ("sip", "pstn") or role not in ("primary", "alternate", "failover") \
                or not (user is None or isinstance(user, str)):
            return None
        return DialTarget(kind, str(d["address"]), user=user, role=role)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


class CallGone(Exception):
    """The caller's channel is gone (hung up, or we hung it up)."""


class Winner(NamedTuple):
    """The leg that answered and is being (or was) connected: what its durable connected
    state says (controller.cluster.manager: ``connected_fields``)."""

    leg: str
    target: DialTarget
    started: float  # the leg started ringing
    at: float  # it answered
    via_alternate: bool = False


class Call:
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
        self._loop = asyncio.get_running_loop()

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

    async def _event(self, deadline: float | None) -> Event | None:
        """The next event, or None at ``deadline`` (loop time). Raises CallGone on hangup."""
        while True:
            if deadline is None:
                ev = await self.inbox.get()
            else:
                remaining = deadline - self._loop.time()
                if remaining <= 0 and self.inbox.empty():
                    return None
                try:
                    async with asyncio.timeout(max(remaining, 0)):
                        ev = await self.inbox.get()
                except TimeoutError:
                    return None
            if isinstance(ev, StasisStart) and ev.channel.id != self.id:
                self._starts_queued -= 1
                self._note()
            if isinstance(ev, (StasisEnd, ChannelDestroyed, ChannelHangupRequest)):
                cid = channel_id_of(ev)
                if cid == self.id:
                    if not self.stopping:
                        self.caller_up = False
                    raise CallGone
                if cid in self.legs and not isinstance(ev, ChannelHangupRequest):
                    if cid == self.connected_leg and isinstance(ev, StasisEnd):
                        return ev
                    if isinstance(ev, ChannelDestroyed):
                        self.legs.discard(cid)
            return ev

    # ------------------------------------------------------------------ main

    async def run(self) -> None:
        CURRENT_CALL.set(self.id)  # this task's context only: tags every log line of the call
        try:
            stop = await self._drive(engine.run_call(self.ctx))
            self.result = stop.reason
            if stop.reason == "connected":
                await self._while_connected()
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

    async def _drive(self, gen: Generator[Any, Any, Stop]) -> Stop:
        try:
            cmd = gen.send(None)
            while True:
                result = await self._exec(cmd)
                cmd = gen.send(result)
        except StopIteration as stop:
            return stop.value if isinstance(stop.value, Stop) else Stop("end")
        finally:
            gen.close()

    async def _exec(self, cmd: Any) -> Any:
        handler = self._HANDLERS.get(type(cmd))
        if handler is None:
            raise TypeError(f"unknown command {cmd!r}")
        return await handler(self, cmd)

    # ------------------------------------------------------------------ commands

    async def _answer(self, _cmd: Answer | None = None) -> None:
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

    async def _indicate(self, _cmd: Indicate) -> None:
        # Ringback is sent once the first INVITE of the ring is on its way (_prepare), so it
        # never delays it; a flow that answers instead (a prompt) needs none.
        if not self.answered:
            self._ring_pending = True

    async def _prompt(self, cmd: Prompt) -> Digits:
        await self._answer()
        self.play_seq += 1
        pb_id = f"{self.id}-P{self.play_seq}"
        playing = bool(cmd.media)
        if playing:
            try:
                await self.ari.play(self.id, list(cmd.media), playback_id=pb_id,
                                    lang=self.ctx.language)
            except NotFound:
                self.caller_up = False
                raise CallGone from None
            # which files Asterisk plays (controller.core.prompts): ops see it in `callctl call`
            self.ctx.log("prompt", node=self.ctx.path[-1] if self.ctx.path else None,
                         media=list(cmd.media),
                         files=prompts.media_files(cmd.media, self.ctx.language),
                         playback=pb_id)
        digits = ""
        if cmd.max_digits == 0 and not playing:
            return Digits("", "played")
        if playing:  # bounded: a lost PlaybackFinished never holds the call (controller.core.waits)
            self.waiting_on = ("playback", pb_id)
            deadline = self._loop.time() + waits.prompt_bound(
                waits.media_seconds(m, self.ctx.language) for m in cmd.media)
        else:
            deadline = self._loop.time() + cmd.timeout
        checks = 0
        try:
            while True:
                ev = await self._event(deadline)
                if ev is None:
                    if not playing:
                        return Digits(digits, "timeout")
                    if await self._still_going("playback", pb_id, checks):
                        checks += 1
                        deadline = self._loop.time() + waits.RECHECK_S
                        continue
                    ev = PlaybackFinished(pb_id, state="gone")  # as if it had come
                if isinstance(ev, PlaybackFinished) and ev.playback_id == pb_id:
                    if not playing:  # stopped by a digit, or a duplicate (resync)
                        continue
                    playing = False
                    self.waiting_on = None
                    if cmd.max_digits == 0:
                        return Digits("", "played")
                    wait = cmd.inter_digit_timeout if digits else cmd.timeout
                    deadline = self._loop.time() + wait
                elif isinstance(ev, ChannelDtmfReceived) and channel_id_of(ev) == self.id:
                    d = ev.digit
                    if d not in DTMF or cmd.max_digits == 0:
                        continue
                    if playing:
                        if not cmd.barge_in:
                            continue
                        playing = False
                        self.waiting_on = None
                        self.ctl.background(self.ari.stop_playback(pb_id))
                    if cmd.sensitive:  # a PIN or account number: never in the trace
                        self.ctx.log("dtmf", masked=True)
                    else:
                        self.ctx.log("dtmf", digit=d)
                    if cmd.terminator and d == cmd.terminator:
                        return Digits(digits, "terminator")
                    digits += d
                    if len(digits) >= cmd.max_digits:
                        return Digits(digits, "max")
                    deadline = self._loop.time() + cmd.inter_digit_timeout
        finally:
            self.waiting_on = None

    async def _still_going(self, kind: str, ident: str, checks: int) -> bool:
        """A wait on ``kind`` ("playback" or "recording") ``ident`` reached its bound: is it
        still going in Asterisk? Gone (404): its end event was lost; the call goes on as if
        it had come. Still going (or ARI not answering): wait again, at most
        ``waits.MAX_RECHECKS`` times; then it is stopped and the call goes on."""
        playback = kind == "playback"
        try:
            if playback:
                await self.ari.get_playback(ident)
            else:
                await self.ari.get_live_recording(ident)
            answer = "still going"
        except NotFound:
            self.ctl.media_event_lost(self, kind, ident, "bound")
            return False
        except AriError as e:
            answer = f"not known ({e})"
        if checks < waits.MAX_RECHECKS:
            log.info("call %s: %s %s: no end event at its bound; ARI: %s; waiting %.0f s more",
                     self.id, kind, ident, answer, waits.RECHECK_S)
            return True
        log.error("call %s: %s %s: no end event %d s after its bound (ARI: %s): stopping it "
                  "and going on", self.id, kind, ident, checks * waits.RECHECK_S, answer)
        self.ctx.log("media_stopped", media=kind, id=ident, reason="no end event")
        self.ctl.background(self.ari.stop_playback(ident) if playback
                            else self.ari.stop_recording(ident))
        return False

    async def _record(self, cmd: Record) -> Recorded:
        if not MAILBOX_RE.fullmatch(cmd.mailbox):
            raise ValueError(f"invalid mailbox {cmd.mailbox!r}")
        await self._answer()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        name = f"voicemail/{cmd.mailbox}/{stamp}-{self.id}"
        self.ctx.log("voicemail", mailbox=cmd.mailbox, recording=name)
        try:
            await self.ari.record(self.id, name=name, fmt="wav", max_duration=cmd.max_seconds,
                                  beep=cmd.beep, terminate_on=cmd.terminate_on or "none")
        except NotFound:
            self.caller_up = False
            raise CallGone from None
        # Bounded: a lost RecordingFinished never holds the call (controller.core.waits).
        self.waiting_on = ("recording", name)
        deadline = self._loop.time() + waits.record_bound(cmd.max_seconds)
        checks = 0
        try:
            while True:
                ev = await self._event(deadline)
                if ev is None:
                    if await self._still_going("recording", name, checks):
                        checks += 1
                        deadline = self._loop.time() + waits.RECHECK_S
                        continue
                    return Recorded(cmd.mailbox, name, 0.0, "finished")  # length unknown
                if isinstance(ev, (RecordingFinished, RecordingFailed)) and ev.name == name:
                    dur = getattr(ev, "duration", None) or 0.0
                    reason = "failed" if isinstance(ev, RecordingFailed) else "finished"
                    return Recorded(cmd.mailbox, name, float(dur), reason)
        except CallGone:
            pass
        finally:
            self.waiting_on = None
        # Hanging up is how callers usually end a message: Asterisk keeps the file and still
        # reports the recording's end. The call is a voicemail, not a lost call.
        self.result = "voicemail"
        deadline = self._loop.time() + 2.0
        reason, dur = "hangup", 0.0
        while True:
            try:
                ev = await self._event(deadline)
            except CallGone:
                continue
            if ev is None:
                break
            if isinstance(ev, (RecordingFinished, RecordingFailed)) and ev.name == name:
                dur = float(getattr(ev, "duration", None) or 0.0)
                reason = "failed" if isinstance(ev, RecordingFailed) else "hangup"
                break
        return Recorded(cmd.mailbox, name, dur, reason)

    async def _http_post(self, cmd: HttpPost) -> HttpResponse:
        return await self.ctl.http_post(cmd.url, cmd.payload, cmd.timeout)

    async def _hangup(self, cmd: Hangup) -> None:
        await self._hangup_caller(cmd.cause)
        self.result = self.result if self.result != "unknown" else "hangup"
        raise CallGone

    async def _load_facts(self, cmd: LoadFacts) -> dict[str, UserFacts]:
        try:
            facts = await self.ctl.store.facts(cmd.users)
        except StoreUnavailable as e:
            log.warning("call %s: %s; routing on last known user state", self.id, e)
            self.ctl.store_failed()
            # Degraded: the last facts read, with "busy" from this controller's own calls
            # (a busy mark read before the outage may be stale; ours are current).
            busy = self.ctl.local_busy()
            return {u: dataclasses.replace(self.ctl.last_facts.get(u, UserFacts()),
                                           busy=u in busy) for u in cmd.users}
        self.ctl.last_facts.update(facts)
        return facts

    async def _next_cursor(self, cmd: NextCursor) -> int:
        try:
            return await self.ctl.store.next_cursor(cmd.key)
        except StoreUnavailable as e:
            log.warning("call %s: %s; round-robin continues locally", self.id, e)
            self.ctl.store_failed()
            return self.ctl.local_cursor(cmd.key)

    async def _get_sticky(self, cmd: GetSticky) -> str | None:
        try:
            return await self.ctl.store.get_sticky(cmd.department, cmd.caller)
        except StoreUnavailable as e:
            log.warning("call %s: %s; no sticky agent this time", self.id, e)
            self.ctl.store_failed()
            return None

    async def _set_sticky(self, cmd: SetSticky) -> None:
        self.ctl.background(self.ctl.store.set_sticky(cmd.department, cmd.caller, cmd.user,
                                                      cmd.ttl))

    # ------------------------------------------------------------------ ringing

    async def _ring(self, cmd: RingGroup) -> RingResult:
        race = RingRace(cmd, self.id)
        await self._apply(race, race.start(time.time(), first_seq=self.leg_seq))
        while not race.done:
            dl = race.next_deadline()
            deadline = None if dl is None else self._loop.time() + (dl - time.time())
            ev = await self._event(deadline)
            now = time.time()
            if ev is None:
                actions = race.expire(now)
            elif isinstance(ev, StasisStart) and ev.channel.id in race.legs:
                actions = race.answered(ev.channel.id, now)
            elif isinstance(ev, ChannelDestroyed) and ev.channel.id in race.legs:
                actions = race.destroyed(ev.channel.id, ev.cause, now)
            elif isinstance(ev, ChannelHangupRequest) and not ev.soft and ev.cause and \
                    ev.channel.id in race.live_legs:
                # The leg is ending with this cause (a 486...): act now, not ~0.2 ms later
                # at ChannelDestroyed (which then changes nothing): the failover hop.
                actions = race.destroyed(ev.channel.id, ev.cause, now)
            else:
                continue
            await self._apply(race, actions)
        self.leg_seq = race.next_seq
        return race.result()  # the pure side logs each leg with its classified outcome

    async def _apply(self, race: RingRace, actions: list[Any]) -> None:
        originates = [a for a in actions if isinstance(a, Originate)]
        connect = next((a for a in actions if isinstance(a, Connect)), None)
        cancels = [asyncio.ensure_future(self._hangup_channel(a.leg_id, a.cause))
                   for a in actions if isinstance(a, Cancel)]
        for job in cancels:
            self.ctl.background(job)
        if connect is not None:
            if cancels:
                # The losers first (cause 26, answered elsewhere): their phones stop ringing
                # before the caller is answered (an Asterisk slow to confirm: not for long).
                await asyncio.wait(cancels, timeout=CANCEL_FIRST_S)
            await self._connect(connect.leg_id, race)
        for a in actions:
            if isinstance(a, Claim):
                won = await self._claim(a, race)
                await self._apply(race, race.claimed(a.leg_id, won, time.time()))
        if originates:
            sending = asyncio.gather(*(self._originate(a) for a in originates))
            self._prepare()  # scheduled after the originates: never ahead of an INVITE
            results = await sending
            for a, ok in zip(originates, results, strict=True):
                if not ok:
                    await self._apply(race, race.originate_failed(a.leg_id, time.time()))

    async def _originate(self, a: Originate) -> bool:
        t = a.target
        endpoint = f"PJSIP/{t.address}" if t.kind == "sip" else \
            f"PJSIP/{t.address}@{self.ctl.trunk}"
        caller_id = presentable(a.caller_id) if a.caller_id else \
            presentable(self.ctx.caller, self.ctx.caller_name)
        self.legs.add(a.leg_id)
        try:
            await self.ari.originate(endpoint, channel_id=a.leg_id, app=self.ctl.app,
                                     app_args=f"leg,{self.id}", caller_id=caller_id,
                                     originator=self.id,
                                     timeout=int(a.timeout) + 10,
                                     variables={TARGET_VAR: target_json(t)})
            return True
        except AriError as e:
            if isinstance(e, AriUnavailable):
                # No answer (a timeout under load): Asterisk may still create the channel.
                # It stays in ``legs`` so teardown hangs it up; it may not ring on meanwhile.
                self.ctl.background(self._hangup_channel(a.leg_id))
            else:
                self.legs.discard(a.leg_id)
            log.info("call %s: cannot ring %s (%s): HTTP %s", self.id, endpoint, t.role,
                     e.status)
            return False

    def _prepare(self) -> None:
        """Off the critical path, once legs ring: the bridge (ready before anyone answers)
        and the ringback the flow asked for."""
        if self._bridge_task is None:
            self.bridge_id = f"{self.id}-B"
            self._bridge_task = asyncio.create_task(self._create_bridge())
        if self._ring_pending:
            self._ring_pending = False
            if not self.answered:
                self.ctl.background(self.ari.ring(self.id))

    async def _create_bridge(self) -> None:
        assert self.bridge_id
        await self.ari.create_bridge(self.bridge_id, type="mixing")

    async def _claim(self, a: Claim, race: RingRace) -> bool:
        """Book the answering leg's user for this call and record the call as connected, in
        one Redis step, before the caller hears anything (so a controller that dies from
        here on leaves a call its successor connects). Lost: the user is on another call.
        Redis away: booked against this controller's own calls (degraded mode)."""
        user = a.target.user
        if user and user in self.ctl.local_busy() - self.busy_users:
            log.info("call %s: %s answered but is on another call: hung up", self.id, user)
            return False
        leg = race.legs[a.leg_id]
        self.winner = Winner(a.leg_id, a.target, leg.started, time.time(), leg.via_alternate)
        self._set_connecting(True)
        try:
            won = await self.ctl.cluster.claim(self)
        except StoreUnavailable as e:
            log.warning("call %s: %s; %s booked against this controller's own calls", self.id,
                        e, user or a.target.address)
            self.ctl.store_failed()
            won = not (user and user in self.ctl.local_busy() - self.busy_users)
        except BaseException:
            self._set_connecting(False)
            raise
        if not won:
            self.winner = None
            self._set_connecting(False)
            log.info("call %s: %s answered but is on another call: hung up", self.id, user)
            return False
        self.connected_leg = a.leg_id
        if user:
            self.busy_users.add(user)
        return True

    async def _connect(self, leg_id: str, race: RingRace) -> None:
        target = race.legs[leg_id].target
        try:
            await self._join(leg_id)
        finally:
            self._set_connecting(False)
        self.ctx.answered_by = target.user or target.address
        self.ctx.log("answer", user=target.user, address=target.address, role=target.role)
        self.ctl.notify_live({"event": "answered", "call_id": self.id, "did": self.ctx.did,
                              "caller": self.ctx.caller, "flow_version": self.version,
                              "user": target.user, "address": target.address,
                              "role": target.role, "answered_at": time.time()})

    async def _join(self, leg_id: str, add: Sequence[str] | None = None) -> None:
        """Answer the caller and put caller and leg in the call's bridge at once (one round
        trip, not two); ``add``: only these channels (an adopter finishing a connect)."""
        self._prepare()
        assert self._bridge_task is not None
        await self._bridge_task
        channels = [self.id, leg_id] if add is None else list(add)
        adding = asyncio.ensure_future(
            self.ari.add_to_bridge(self.bridge_id or "", channels)) if channels else None
        try:
            await self._answer()
        except BaseException:
            if adding is not None:
                await asyncio.gather(adding, return_exceptions=True)
            raise
        if adding is None:
            return
        try:
            await adding
        except AriError as e:
            # 404 (bridge) or 400 "Channel not found": a side hung up meanwhile; its end
            # event follows and ends the call as usual.
            if not (isinstance(e, NotFound) or "not found" in e.message.lower()):
                raise
            log.info("call %s: leg %s or caller vanished while bridging", self.id, leg_id)

    def connect_entries(self) -> list[TraceEntry]:
        """The trace entries a connect adds (the answer, the answering leg), for the durable
        state written before they are logged (``Cluster.connected_fields``)."""
        w = self.winner
        if w is None:
            return []
        t = w.target
        return [TraceEntry(w.at, "answer", {"user": t.user, "address": t.address,
                                            "role": t.role}),
                TraceEntry(w.at, "leg", {"user": t.user, "address": t.address,
                                         "tech": t.kind, "role": t.role,
                                         "outcome": "answered", "cause": None,
                                         "via_alternate": w.via_alternate,
                                         "started": w.started, "ended": w.at})]

    async def _while_connected(self) -> None:
        """Bridged: wait for either side to hang up."""
        while True:
            ev = await self._event(None)
            cid = channel_id_of(ev)
            if cid == self.connected_leg and isinstance(ev, (StasisEnd, ChannelDestroyed)):
                self.result = "completed"
                return
            if isinstance(ev, StasisStart) and cid != self.connected_leg:
                self.ctl.background(self._hangup_channel(cid or ""))  # a late, stray leg

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
            await self._while_connected()
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

    _HANDLERS: dict[type, Any] = {
        Answer: _answer, Indicate: _indicate, Prompt: _prompt, Record: _record,
        HttpPost: _http_post, Hangup: _hangup, LoadFacts: _load_facts,
        NextCursor: _next_cursor, GetSticky: _get_sticky, SetSticky: _set_sticky,
        RingGroup: _ring,
    }
