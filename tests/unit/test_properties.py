"""Property-based tests (hypothesis): odd event orderings and hostile input never crash the
controller or leak a channel or a bridge.

- The ring race (pure): any sequence of answers, failures, timeouts and stale events.
- One call, the real ``Call`` shell, against an in-memory Asterisk (no network): hangup
  during dial, answer after cancel, DTMF after hangup, duplicated events, originates that
  time out (the channel may still appear) - the call always ends, logs once, and every leg
  and bridge it made is gone.
- Caller ids and ARI event payloads from arbitrary text/JSON.
"""

from __future__ import annotations

import asyncio
import string
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from controller.adapters.ari.errors import AriUnavailable, BadRequest, NotFound
from controller.adapters.ari.events import Event
from controller.adapters.ari.parse import channel_id_of, parse_event
from controller.adapters.redis import StoreUnavailable
from controller.core.callerid import normalise, presentable, valid_did
from controller.core.flows.schema import FlowSet
from controller.core.model import CallContext, DialTarget, HttpResponse, RingGroup, UserFacts
from controller.core.ringrace import ANSWERED_ELSEWHERE, Cancel, Claim, Connect, Originate, RingRace
from controller.shell.call import Call

# ---------------------------------------------------------------------------- ring race (pure)

CAUSES = st.sampled_from([0, 1, 16, 17, 18, 19, 21, 27, 34, 38, 41, 127, None])


def _group(n: int, with_alt: list[bool], timeout: float) -> RingGroup:
    targets = []
    for i in range(n):
        alt = DialTarget("sip", f"agent{i + 5}", user=f"u{i}", role="alternate") \
            if with_alt[i] else None
        targets.append(DialTarget("sip", f"agent{i + 1}", user=f"u{i}", alternate=alt))
    return RingGroup(tuple(targets), timeout, alternate_causes=frozenset({17, 34, 1}),
                     alternate_on_no_contact=True)


race_steps = st.lists(st.one_of(
    st.tuples(st.just("answer"), st.integers(0, 9)),
    st.tuples(st.just("claimed"), st.booleans()),
    st.tuples(st.just("destroyed"), st.integers(0, 9), CAUSES),
    st.tuples(st.just("failed"), st.integers(0, 9)),
    st.tuples(st.just("expire"), st.floats(0, 40)),
    st.tuples(st.just("stale_answer"), st.integers(0, 3)),
), max_size=30)


@given(n=st.integers(1, 4), alts=st.lists(st.booleans(), min_size=4, max_size=4),
       steps=race_steps)
def test_ring_race_any_ordering_has_at_most_one_winner_and_ends(
        n: int, alts: list[bool], steps: list[tuple[Any, ...]]) -> None:
    race = RingRace(_group(n, alts, 20.0), "c")
    now = 1000.0
    actions = race.start(now)
    originated = [a.leg_id for a in actions if isinstance(a, Originate)]
    connects: list[str] = []
    asked: list[str] = []  # claims asked for, outcome not fed back yet

    def check(out: list[Any], via_claim_won: bool) -> None:
        for a in out:
            if isinstance(a, Originate):
                assert race.winner is None  # nothing new rings once someone answered
                originated.append(a.leg_id)
            elif isinstance(a, Claim):
                asked.append(a.leg_id)
            elif isinstance(a, Connect):
                assert via_claim_won  # only a won claim connects
                connects.append(a.leg_id)
        if any(isinstance(a, Connect) for a in out):
            # the losers are cancelled first, as answered elsewhere
            assert isinstance(out[-1], Connect)
            assert all(isinstance(a, Cancel) and a.cause == ANSWERED_ELSEWHERE
                       for a in out[:-1])
        assert len(asked) <= 1  # one claim at a time

    for step in steps:
        kind, won = step[0], False
        if kind == "expire":
            now += step[1]
            out = race.expire(now)
        elif kind == "stale_answer":
            out = race.answered(f"c-L{900 + step[1]}", now)  # a leg that is not ours
            assert out == [Cancel(f"c-L{900 + step[1]}")]
        elif kind == "claimed":
            won = step[1]
            out = race.claimed(asked.pop(), won, now) if asked else []
        else:
            leg = originated[step[1] % len(originated)]
            if kind == "answer":
                out = race.answered(leg, now)
                if connects and leg not in connects:  # answer after the race is won
                    assert Cancel(leg, ANSWERED_ELSEWHERE) in out
            elif kind == "destroyed":
                out = race.destroyed(leg, step[2], now)
            else:
                out = race.originate_failed(leg, now)
        check(out, won)
    assert len(connects) <= 1
    if connects:
        assert race.winner == connects[0] and race.done
    while asked:  # the store answers the pending claims (lost: the others get theirs)
        check(race.claimed(asked.pop(), False, now), False)
    race.expire(now + 1000)  # the ring time runs out for whatever still rings
    assert race.done and set(race.live_legs) <= {race.winner}  # only the winner stays up
    res = race.result()
    assert (res.answered is None) == (race.winner is None)
    assert sum(1 for leg in res.legs if leg.answered) == (1 if race.winner else 0)


# ---------------------------------------------------------------------------- one call, in memory

FLOWS = {
    "settings": {"timezone": "UTC", "forward_to_alternate": True},
    "users": {"alice": {"endpoint": "agent1", "alternate": "sip:agent3"},
              "bob": {"endpoint": "agent2"}},
    "departments": {"team": {"strategy": "simultaneous", "members": ["alice", "bob"],
                             "ring_time": 20}},
    "flows": {
        "menu": {"dids": ["+15550100"], "entry": "m", "nodes": {
            "m": {"type": "menu", "prompt": "beep", "options": {"1": "ring"},
                  "fallback": "ring"},
            "ring": {"type": "department", "department": "team", "fallback": "bye"},
            "bye": {"type": "hangup"}}},
        "direct": {"dids": ["+15550200"], "entry": "ring", "nodes": {
            "ring": {"type": "department", "department": "team", "fallback": "bye"},
            "bye": {"type": "hangup"}}},
    },
}
FLOWSET = FlowSet.model_validate(FLOWS)
CALLER = "caller1"


def _ev(etype: str, cid: str, **kw: Any) -> Event:
    return parse_event({"type": etype, "channel": {"id": cid, "state": "Up"}, **kw})


@dataclass
class World:
    """What Asterisk holds for the call: channels (id -> state) and bridges."""

    call: Call | None = None
    channels: dict[str, str] = field(default_factory=lambda: {CALLER: "Ring"})
    bridges: dict[str, set[str]] = field(default_factory=dict)
    originated: list[str] = field(default_factory=list)
    fail_next: str | None = None  # "unavailable" | "bad"
    ops: list[tuple[Any, ...]] = field(default_factory=list)  # hangups, answers, bridging
    booked: set[str] = field(default_factory=set)  # users on another call (claims lose)
    store_down: bool = False  # claims raise StoreUnavailable (degraded mode)

    def gone(self, cid: str, cause: int = 16) -> None:
        """A channel ends: Asterisk tells the app (in this order)."""
        if self.channels.pop(cid, None) is None:
            return
        for b in self.bridges.values():
            b.discard(cid)
        assert self.call is not None
        self.call.feed(_ev("ChannelHangupRequest", cid, cause=cause))
        self.call.feed(_ev("StasisEnd", cid))
        self.call.feed(_ev("ChannelDestroyed", cid, cause=cause, cause_txt=""))


class FakeAri:
    def __init__(self, world: World) -> None:
        self.w = world

    def _need(self, cid: str) -> None:
        if cid not in self.w.channels:
            raise NotFound(404, "POST", f"/channels/{cid}", "Channel not found")

    async def originate(self, endpoint: str, *, channel_id: str, **kw: Any) -> dict[str, Any]:
        await asyncio.sleep(0)
        fail, self.w.fail_next = self.w.fail_next, None
        if fail == "bad":
            raise BadRequest(400, "POST", "/channels", "Allocation failed")
        self.w.channels[channel_id] = "Ringing"
        self.w.originated.append(channel_id)
        if fail == "unavailable":  # no HTTP answer, yet Asterisk made the channel
            raise AriUnavailable("POST", "/channels", "no answer within 5 s")
        return {"id": channel_id}

    async def hangup(self, cid: str, reason_code: int | None = None, **kw: Any) -> None:
        self.w.ops.append(("hangup", cid, reason_code))
        await asyncio.sleep(0)
        self._need(cid)
        self.w.gone(cid, reason_code or 16)

    async def answer(self, cid: str) -> None:
        self.w.ops.append(("answer", cid))
        await asyncio.sleep(0)
        self._need(cid)
        self.w.channels[cid] = "Up"

    async def ring(self, cid: str) -> None:
        self._need(cid)

    async def play(self, cid: str, media: Any, **kw: Any) -> None:
        self._need(cid)

    async def stop_playback(self, pid: str) -> None:
        return None

    async def record(self, cid: str, **kw: Any) -> None:
        self._need(cid)

    async def create_bridge(self, bid: str, type: str = "mixing") -> None:
        await asyncio.sleep(0)
        self.w.bridges[bid] = set()

    async def add_to_bridge(self, bid: str, channels: Any) -> None:
        self.w.ops.append(("add", bid, tuple(channels)))
        await asyncio.sleep(0)
        if bid not in self.w.bridges:
            raise NotFound(404, "POST", f"/bridges/{bid}/addChannel", "Bridge not found")
        for c in channels:
            if c not in self.w.channels:
                raise BadRequest(400, "POST", f"/bridges/{bid}/addChannel",
                                 "Channel not found")
        self.w.bridges[bid].update(channels)

    async def destroy_bridge(self, bid: str) -> None:
        await asyncio.sleep(0)
        if self.w.bridges.pop(bid, None) is None:
            raise NotFound(404, "DELETE", f"/bridges/{bid}", "Bridge not found")


class FakeStore:
    def __init__(self) -> None:
        self.n = 0

    async def facts(self, users: tuple[str, ...]) -> dict[str, UserFacts]:
        return {u: UserFacts() for u in users}

    async def next_cursor(self, key: str) -> int:
        self.n += 1
        return self.n

    async def get_sticky(self, dept: str, caller: str) -> None:
        return None

    async def set_sticky(self, *a: Any) -> None:
        return None


class FakeCtl:
    app = "t"
    trunk = "pstn"

    def __init__(self, world: World) -> None:
        self.world = world
        self.ari = FakeAri(world)
        self.store = FakeStore()
        self.calls: dict[str, Call] = {}
        self.last_facts: dict[str, UserFacts] = {}
        self.tasks: set[asyncio.Future[Any]] = set()
        self.ended = 0
        self.cluster = self

    async def claim(self, call: Call) -> bool:
        await asyncio.sleep(0)
        if self.world.store_down:
            raise StoreUnavailable("redis: ConnectionError")
        assert call.winner is not None
        return call.winner.target.user not in self.world.booked

    def background(self, aw: Any) -> None:
        t = asyncio.ensure_future(aw)
        self.tasks.add(t)

    async def call_ended(self, call: Call) -> None:
        self.ended += 1

    def notify_live(self, event: dict[str, Any]) -> None:
        return None

    def local_busy(self) -> set[str]:
        return set()

    def store_failed(self) -> None:
        return None

    def local_cursor(self, key: str) -> int:
        return 0

    async def http_post(self, *a: Any) -> HttpResponse:
        return HttpResponse(200, {})


call_steps = st.lists(st.one_of(
    st.tuples(st.just("leg_answers"), st.integers(0, 5)),
    st.tuples(st.just("leg_fails"), st.integers(0, 5), st.sampled_from([1, 17, 19, 21, 34, 0])),
    st.tuples(st.just("dtmf"), st.sampled_from([*"0123456789*#", "X", ""])),
    st.tuples(st.just("playback_done"), st.integers(1, 3)),
    st.tuples(st.just("caller_hangs_up"), st.sampled_from(
        ["ChannelHangupRequest", "StasisEnd", "ChannelDestroyed"])),
    st.tuples(st.just("agent_hangs_up")),
    st.tuples(st.just("duplicate"), st.integers(0, 20)),
    st.tuples(st.just("originate_error"), st.sampled_from(["unavailable", "bad"])),
    st.tuples(st.just("tick"), st.integers(1, 5)),
    st.tuples(st.just("booked_elsewhere"), st.sampled_from(["alice", "bob"])),
    st.tuples(st.just("store_down")),
), max_size=25)


async def _play(did: str, steps: list[tuple[Any, ...]]) -> tuple[World, FakeCtl, Call]:
    w = World()
    ctl = FakeCtl(w)
    ctx = CallContext(call_id=CALLER, did=did, caller="+15551234567", flowset=FLOWSET,
                      now=lambda: __import__("datetime").datetime.now(
                          __import__("datetime").UTC))
    call = Call(ctl, CALLER, ctx, 1)  # type: ignore[arg-type]
    w.call = call
    ctl.calls[CALLER] = call
    fed: list[Event] = []
    feed = call.feed

    def recording_feed(ev: Event) -> None:
        fed.append(ev)
        feed(ev)

    call.feed = recording_feed  # type: ignore[method-assign]
    task = asyncio.ensure_future(call.run())

    async def spin(n: int = 3) -> None:
        for _ in range(n):
            await asyncio.sleep(0)

    await spin(10)
    for step in steps:
        kind = step[0]
        legs = w.originated
        if kind == "leg_answers" and legs:
            leg = legs[step[1] % len(legs)]  # may be cancelled already: answer after cancel
            if leg in w.channels:
                w.channels[leg] = "Up"
            call.feed(parse_event({"type": "StasisStart", "args": ["leg", CALLER],
                                   "channel": {"id": leg, "state": "Up"}}))
        elif kind == "leg_fails" and legs:
            w.gone(legs[step[1] % len(legs)], step[2])
        elif kind == "dtmf":  # also after the caller hung up
            call.feed(_ev("ChannelDtmfReceived", CALLER, digit=step[1], duration_ms=100))
        elif kind == "playback_done":
            call.feed(parse_event({"type": "PlaybackFinished", "playback": {
                "id": f"{CALLER}-P{step[1]}", "target_uri": f"channel:{CALLER}",
                "state": "done"}}))
        elif kind == "caller_hangs_up":
            if w.channels.pop(CALLER, None) is not None:
                call.feed(_ev(step[1], CALLER, cause=16))
        elif kind == "agent_hangs_up" and call.connected_leg:
            w.gone(call.connected_leg)
        elif kind == "duplicate" and fed:
            call.feed(fed[step[1] % len(fed)])
        elif kind == "originate_error":
            w.fail_next = step[1]
        elif kind == "booked_elsewhere":  # the user's claim is lost from now on
            w.booked.add(step[1])
        elif kind == "store_down":
            w.store_down = True
        await spin(step[1] if kind == "tick" else 3)
    if w.channels.pop(CALLER, None) is not None:  # the caller always hangs up in the end
        call.feed(_ev("StasisEnd", CALLER))
        call.feed(_ev("ChannelDestroyed", CALLER, cause=16))
    await asyncio.wait_for(task, 5)
    while ctl.tasks:  # background hangups
        pending = list(ctl.tasks)
        ctl.tasks.clear()
        await asyncio.gather(*pending, return_exceptions=True)
    return w, ctl, call


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(did=st.sampled_from(["+15550100", "+15550200"]), steps=call_steps)
# the orderings the issue names, always tried
@example(did="+15550200", steps=[("tick", 3), ("caller_hangs_up", "ChannelHangupRequest"),
                                  ("leg_answers", 0)])  # hangup during dial, then an answer
@example(did="+15550200", steps=[("leg_answers", 0), ("leg_answers", 1),
                                  ("leg_answers", 1)])  # answer after cancel (and twice)
@example(did="+15550100", steps=[("caller_hangs_up", "StasisEnd"), ("dtmf", "1"),
                                  ("playback_done", 1)])  # DTMF after hangup
@example(did="+15550200", steps=[("originate_error", "unavailable"), ("leg_fails", 0, 17),
                                  ("tick", 5)])  # an alternate's originate times out
@example(did="+15550200", steps=[("leg_answers", 0), ("agent_hangs_up",),
                                  ("duplicate", 3), ("leg_answers", 1)])
@example(did="+15550200", steps=[("booked_elsewhere", "alice"), ("leg_answers", 0),
                                  ("leg_answers", 1)])  # a lost claim, then the next answer
@example(did="+15550200", steps=[("store_down",), ("leg_answers", 1)])  # degraded claim
def test_any_event_ordering_ends_the_call_once_and_leaks_nothing(
        did: str, steps: list[tuple[Any, ...]]) -> None:
    w, ctl, call = asyncio.run(_play(did, steps))
    assert call.result != "error", (call.result, steps)
    assert ctl.ended == 1
    assert not [c for c in w.channels if c.startswith(f"{CALLER}-L")], (w.channels, steps)
    assert not w.bridges, (w.bridges, steps)


def _legs(call: Call) -> dict[str, str]:
    return {t.data["user"]: t.data["outcome"] for t in call.ctx.trace if t.kind == "leg"}


def test_the_losing_legs_are_cancelled_as_answered_elsewhere_before_the_caller_is_answered(
        ) -> None:
    w, _, call = asyncio.run(_play("+15550200", [("leg_answers", 1), ("tick", 5)]))
    loser, winner = f"{CALLER}-L1", f"{CALLER}-L2"
    assert call.ctx.answered_by == "bob" and _legs(call) == {"alice": "cancelled",
                                                             "bob": "answered"}
    cancel = w.ops.index(("hangup", loser, 26))
    assert cancel < w.ops.index(("answer", CALLER))
    assert cancel < w.ops.index(("add", f"{CALLER}-B", (CALLER, winner)))


def test_a_leg_whose_user_is_booked_elsewhere_is_hung_up_and_the_race_goes_on() -> None:
    w, _, call = asyncio.run(_play("+15550200", [
        ("booked_elsewhere", "alice"), ("leg_answers", 0), ("tick", 5), ("leg_answers", 1),
        ("tick", 5)]))
    assert ("hangup", f"{CALLER}-L1", None) in w.ops  # a BYE, not "answered elsewhere"
    assert ("answer", CALLER) in w.ops and call.ctx.answered_by == "bob"
    assert _legs(call) == {"alice": "busy", "bob": "answered"}
    assert call.busy_users == {"bob"}


def test_a_user_booked_by_every_leg_that_answers_leaves_the_call_unanswered() -> None:
    w, _, call = asyncio.run(_play("+15550200", [
        ("booked_elsewhere", "alice"), ("booked_elsewhere", "bob"), ("leg_answers", 0),
        ("tick", 5), ("leg_answers", 1), ("tick", 5)]))
    assert ("answer", CALLER) not in w.ops and call.ctx.answered_by is None
    assert _legs(call) == {"alice": "busy", "bob": "busy"}  # then its fallback: hang up


def test_with_redis_away_a_call_still_connects_booked_against_its_controller() -> None:
    w, _, call = asyncio.run(_play("+15550200", [("store_down",), ("leg_answers", 0),
                                                 ("tick", 5)]))
    assert ("answer", CALLER) in w.ops and call.ctx.answered_by == "alice"
    assert call.busy_users == {"alice"}


# ---------------------------------------------------------------------------- hostile input

@given(st.text(max_size=60) | st.text(alphabet=string.digits + "+-() .#*", max_size=30))
def test_caller_ids_normalise_to_digits_or_nothing(raw: str) -> None:
    n = normalise(raw)
    assert n == "" or (n.lstrip("+").isdigit() and n.count("+") <= 1 and len(n) <= 21)
    p = presentable(raw)
    assert p is None or (p.startswith("<") and p.endswith(">") and p[1:-1] == n)
    assert not valid_did(raw) or raw.lstrip("+").isdigit()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
EVENT_TYPES = ["StasisStart", "StasisEnd", "ChannelDestroyed", "ChannelHangupRequest",
               "ChannelDtmfReceived", "PlaybackFinished", "RecordingFinished", "Dial", "x"]


@given(etype=st.sampled_from(EVENT_TYPES),
       body=st.dictionaries(st.sampled_from(["channel", "args", "digit", "cause", "playback",
                                             "recording", "peer", "timestamp"]), json_values,
                            max_size=6))
def test_malformed_ari_events_parse_without_raising(etype: str, body: dict[str, Any]) -> None:
    ev = parse_event({"type": etype, **body})
    cid = channel_id_of(ev)
    assert cid is None or isinstance(cid, str)
