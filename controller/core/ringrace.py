"""The ring race: several legs ring, the first answer wins. Pure, no I/O.

One ``RingRace`` per ``RingGroup`` command. :func:`ring` feeds it what happened (originate
failed, a leg answered, the claim of an answering leg's user won or lost, a leg was destroyed
with a cause, the ring timeout) and carries out the actions it returns against the call's
Port (controller.core.port). All ring-all decisions live here, in one place:

- a leg that answers is **claimed** first (``Claim``): its user booked for this call and the
  call recorded as connected, in one atomic store step, before the caller is answered. The
  runtime feeds the outcome back (``claimed``);
- the claim won: that leg wins; every other live leg is cancelled with cause 26 (answered
  elsewhere: phones stop ringing and log no missed call), *before* the caller is answered
  and bridged (``Cancel``s come before the ``Connect``);
- the claim lost (the user was booked by another call meanwhile, e.g. the same phone answered
  two calls): that leg is hung up and counts as busy; the other legs ring on (when none is
  left the race is over, unanswered: the flow goes on to the next member, as for a busy one;
  no alternate rings: the person is on a call);
- a leg answering while another one's claim is pending waits for it; a leg answering after a
  winner exists is cancelled (two answers in the same instant never both get the caller:
  events of one call are processed strictly in order);
- a leg that fails with one of the group's alternate causes (or has no contact) rings its
  target's alternate immediately, sequentially (the primary is already gone);
- at the timeout every live leg is cancelled (and, if the flow opted in, alternates ring).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from controller.core.model import CallContext, DialTarget, LegResult, RingGroup, RingResult
from controller.core.port import LegAnswered, LegEnded, Originate, Port, Unavailable, Winner

__all__ = ["ANSWERED_ELSEWHERE", "CANCEL_FIRST_S", "CLAIMED_ELSEWHERE", "Cancel", "Claim",
           "Connect", "Originate", "RingRace", "ring"]

log = logging.getLogger("callctl.call")

ANSWERED_ELSEWHERE = 26
"""Q.850 cause for the legs that lose to an answer (SIP ``Reason: Q.850;cause=26`` on their
CANCEL): a phone shows no missed call."""
CLAIMED_ELSEWHERE = 17
"""Cause recorded for a leg whose user was claimed by another call when it answered."""


@dataclass(frozen=True, slots=True)
class Cancel:
    """Hang this leg up (CANCEL while it rings, BYE once answered), with ``cause`` (Q.850;
    None: normal clearing, 16)."""

    leg_id: str
    cause: int | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """This leg answered: book its user for the call and record the call as connected (one
    atomic store step); feed the outcome back with ``RingRace.claimed``."""

    leg_id: str
    target: DialTarget


@dataclass(frozen=True, slots=True)
class Connect:
    """Answer the caller and bridge this (claimed) leg with it."""

    leg_id: str


Action = Originate | Cancel | Claim | Connect


@dataclass(slots=True)
class _Leg:
    target: DialTarget
    started: float
    via_alternate: bool
    live: bool = True
    answered: bool = False
    cause: int | None = None
    timed_out: bool = False
    cancelled: bool = False
    no_contact: bool = False
    claimed_elsewhere: bool = False
    ended: float = 0.0


@dataclass(slots=True)
class RingRace:
    group: RingGroup
    call_id: str
    legs: dict[str, _Leg] = field(default_factory=dict)
    winner: str | None = None
    claiming: str | None = None
    """The answered leg whose claim is pending."""
    held: list[str] = field(default_factory=list)
    """Legs that answered while a claim was pending: claimed in turn if it loses."""
    _seq: int = 0

    # ------------------------------------------------------------------ inputs

    def start(self, now: float, first_seq: int = 0) -> list[Action]:
        self._seq = first_seq
        return [self._originate(t, now, via_alternate=False) for t in self.group.targets]

    def originate_failed(self, leg_id: str, now: float) -> list[Action]:
        """The channel could not even be created (no reachable contact / unknown endpoint)."""
        leg = self.legs.get(leg_id)
        if leg is None or not leg.live:
            return []
        leg.live, leg.no_contact, leg.ended = False, True, now
        if self.winner is None and self.group.alternate_on_no_contact:
            return self._alternate_for(leg, now)
        return []

    def answered(self, leg_id: str, now: float) -> list[Action]:
        leg = self.legs.get(leg_id)
        if leg is None:
            return [Cancel(leg_id)]  # not ours (stale): make sure it does not linger
        if leg_id in (self.winner, self.claiming) or leg_id in self.held:
            return []  # the same answer again (a duplicated event)
        if self.winner is not None or not leg.live:
            cause = ANSWERED_ELSEWHERE if self.winner is not None else None
            leg.live, leg.cancelled, leg.ended = False, True, leg.ended or now
            return [Cancel(leg_id, cause)]
        leg.live, leg.ended = False, now  # ``ended`` = ring stop: the answer
        if self.claiming is not None:
            self.held.append(leg_id)
            return []
        self.claiming = leg_id
        return [Claim(leg_id, leg.target)]

    def claimed(self, leg_id: str, won: bool, now: float) -> list[Action]:
        """The outcome of ``Claim(leg_id)``: ``won`` (the user is booked for this call, the
        call recorded as connected) or lost (the user is booked by another call)."""
        if leg_id != self.claiming:
            return []
        self.claiming = None
        leg = self.legs[leg_id]
        if won:
            self.winner = leg_id
            leg.answered = True
            actions: list[Action] = []
            for other_id, other in self.legs.items():
                if other_id != leg_id and (other.live or other_id in self.held):
                    other.live, other.cancelled = False, True
                    other.ended = other.ended if other_id in self.held else now
                    actions.append(Cancel(other_id, ANSWERED_ELSEWHERE))
            self.held.clear()
            return [*actions, Connect(leg_id)]  # the losers first: they stop ringing at once
        leg.claimed_elsewhere, leg.cause = True, CLAIMED_ELSEWHERE
        actions = [Cancel(leg_id)]
        if self.held:
            self.claiming = self.held.pop(0)
            actions.append(Claim(self.claiming, self.legs[self.claiming].target))
        return actions

    def destroyed(self, leg_id: str, cause: int | None, now: float) -> list[Action]:
        leg = self.legs.get(leg_id)
        if leg is None:
            return []
        if leg.answered:
            return []  # the winner hung up later: the call's business, not the race's
        if leg_id in self.held:  # answered, then hung up before its turn to be claimed
            self.held.remove(leg_id)
            leg.cause = cause
            return []
        if not leg.live:
            if leg.cause is None and not leg.no_contact:
                leg.cause = cause  # a cancelled leg's final cause, for the trace
            return []
        leg.live, leg.cause, leg.ended = False, cause, now
        if self.winner is None and cause is not None and cause in self.group.alternate_causes:
            return self._alternate_for(leg, now)
        return []

    def next_deadline(self) -> float | None:
        """When the earliest live leg's ring time runs out (each leg has its own)."""
        live = [leg.started + self.group.timeout for leg in self.legs.values() if leg.live]
        return min(live) if live else None

    def expire(self, now: float) -> list[Action]:
        """Cancel the legs whose ring time is over (and, if opted in, ring their alternates)."""
        if self.winner is not None:
            return []
        actions: list[Action] = []
        for lid, leg in list(self.legs.items()):
            if leg.live and leg.started + self.group.timeout <= now + 1e-3:
                leg.live, leg.timed_out, leg.ended = False, True, now
                actions.append(Cancel(lid))
                if self.group.alternate_on_timeout:
                    actions.extend(self._alternate_for(leg, now))
        return actions

    # ------------------------------------------------------------------ state

    @property
    def done(self) -> bool:
        if self.winner is not None:
            return True
        return self.claiming is None and not self.held and \
            not any(leg.live for leg in self.legs.values())

    @property
    def live_legs(self) -> list[str]:
        return [lid for lid, leg in self.legs.items() if leg.live]

    def result(self) -> RingResult:
        legs = tuple(
            LegResult(target=leg.target, answered=leg.answered, cause=leg.cause,
                      timed_out=leg.timed_out, cancelled=leg.cancelled,
                      no_contact=leg.no_contact, started=leg.started, ended=leg.ended,
                      via_alternate=leg.via_alternate,
                      claimed_elsewhere=leg.claimed_elsewhere)
            for leg in self.legs.values()
        )
        answered = self.legs[self.winner].target if self.winner else None
        return RingResult(answered=answered, legs=legs)

    # ------------------------------------------------------------------ helpers

    def _originate(self, target: DialTarget, now: float, *, via_alternate: bool) -> Originate:
        self._seq += 1
        leg_id = f"{self.call_id}-L{self._seq}"
        self.legs[leg_id] = _Leg(target=target, started=now, via_alternate=via_alternate)
        cid = self.group.alternate_caller_id if via_alternate else self.group.caller_id
        return Originate(leg_id, target, cid, self.group.timeout)

    def _alternate_for(self, leg: _Leg, now: float) -> list[Action]:
        alt = leg.target.alternate
        if alt is None or leg.via_alternate:
            return []
        alt = replace(alt, role="alternate", user=alt.user or leg.target.user)
        return [self._originate(alt, now, via_alternate=True)]

    @property
    def next_seq(self) -> int:
        return self._seq


# ---------------------------------------------------------------------------------- driver

CANCEL_FIRST_S = 0.5
"""How long the caller's answer waits for the losing legs' hangups to be confirmed."""


async def ring(port: Port, cmd: RingGroup, ctx: CallContext) -> RingResult:
    """Run the race for ``cmd`` on ``port`` until someone is connected or nobody rings."""
    race = RingRace(cmd, port.call_id)
    await _apply(port, ctx, race, race.start(port.now(), first_seq=port.leg_seq))
    while not race.done:
        sig = await port.next_event(race.next_deadline())
        now = port.now()
        if sig is None:
            actions = race.expire(now)
        elif isinstance(sig, LegAnswered) and sig.leg in race.legs:
            actions = race.answered(sig.leg, now)
        elif isinstance(sig, LegEnded) and sig.final and sig.leg in race.legs:
            actions = race.destroyed(sig.leg, sig.cause, now)
        elif isinstance(sig, LegEnded) and sig.cause and sig.leg in race.live_legs:
            # The leg is ending with this cause (a 486...): act now, not ~0.2 ms later at
            # its destruction (which then changes nothing): the failover hop.
            actions = race.destroyed(sig.leg, sig.cause, now)
        else:
            continue
        await _apply(port, ctx, race, actions)
    port.leg_seq = race.next_seq
    return race.result()  # the ringing node logs each leg with its classified outcome


async def _apply(port: Port, ctx: CallContext, race: RingRace, actions: list[Action]) -> None:
    originates = [a for a in actions if isinstance(a, Originate)]
    connect = next((a for a in actions if isinstance(a, Connect)), None)
    cancels = [(a.leg_id, a.cause) for a in actions if isinstance(a, Cancel)]
    if cancels:
        # The losers first (cause 26, answered elsewhere): their phones stop ringing
        # before the caller is answered (an Asterisk slow to confirm: not for long).
        await port.cancel(cancels, CANCEL_FIRST_S if connect is not None else 0.0)
    if connect is not None:
        await _connect(port, ctx, race, connect.leg_id)
    for a in actions:
        if isinstance(a, Claim):
            won = await _claim(port, race, a)
            await _apply(port, ctx, race, race.claimed(a.leg_id, won, port.now()))
    if originates:
        for o, ok in zip(originates, await port.originate(originates), strict=True):
            if not ok:
                await _apply(port, ctx, race, race.originate_failed(o.leg_id, port.now()))


async def _claim(port: Port, race: RingRace, a: Claim) -> bool:
    """Book the answering leg's user for this call and record the call as connected, in one
    store step, before the caller hears anything (so a controller that dies from here on
    leaves a call its successor connects). Lost: the user is on another call. The store
    away: booked against this controller's own calls (degraded mode)."""
    user = a.target.user
    if user and user in port.busy_here():
        log.info("call %s: %s answered but is on another call: hung up", port.call_id, user)
        return False
    leg = race.legs[a.leg_id]
    winner = Winner(a.leg_id, a.target, leg.started, port.now(), leg.via_alternate)
    try:
        won = await port.claim(winner)
    except Unavailable as e:
        log.warning("call %s: %s; %s booked against this controller's own calls",
                    port.call_id, e, user or a.target.address)
        port.store_failed()
        won = not (user and user in port.busy_here())
    port.claimed(winner, won)
    if not won:
        log.info("call %s: %s answered but is on another call: hung up", port.call_id, user)
    return won


async def _connect(port: Port, ctx: CallContext, race: RingRace, leg_id: str) -> None:
    target = race.legs[leg_id].target
    await port.connect(leg_id)
    ctx.answered_by = target.user or target.address
    ctx.log("answer", user=target.user, address=target.address, role=target.role)
    port.connected_with(target)
