"""The ring race: first answer claimed wins, the losers cancelled first (cause 26), a lost
claim rings on, alternates at once, per-leg ring time. Pure."""

from __future__ import annotations

from controller.core.model import DialTarget, RingGroup
from controller.core.ringrace import ANSWERED_ELSEWHERE, Cancel, Claim, Connect, Originate, RingRace

A = DialTarget("sip", "agent1", user="a")
B = DialTarget("sip", "agent2", user="b")
C = DialTarget("sip", "agent3", user="c")
ALT = DialTarget("pstn", "+15557770001", role="alternate")
A_WITH_ALT = DialTarget("sip", "agent1", user="a", alternate=ALT)


def race(*targets: DialTarget, **kw: object) -> tuple[RingRace, list[Originate]]:
    group = RingGroup(targets=targets, timeout=20, alternate_causes=frozenset({17, 1}),
                      **kw)  # type: ignore[arg-type]
    r = RingRace(group, "c1")
    acts = r.start(now=100.0)
    assert all(isinstance(a, Originate) for a in acts)
    return r, acts  # type: ignore[return-value]


def test_given_three_legs_when_b_answers_then_b_is_claimed_and_the_others_ring_on() -> None:
    r, acts = race(A, B, C)
    ids = [a.leg_id for a in acts]
    assert ids == ["c1-L1", "c1-L2", "c1-L3"]
    assert r.answered("c1-L2", 101.0) == [Claim("c1-L2", B)]
    assert not r.done and set(r.live_legs) == {"c1-L1", "c1-L3"}  # until the claim is won


def test_given_b_claimed_then_the_others_are_cancelled_as_answered_elsewhere_before_connect(
        ) -> None:
    r, _ = race(A, B, C)
    r.answered("c1-L2", 101.0)
    out = r.claimed("c1-L2", True, 101.001)
    # the losers first, with cause 26: the phones stop ringing before the caller is answered
    assert out[-1] == Connect("c1-L2")
    assert set(out[:-1]) == {Cancel("c1-L1", ANSWERED_ELSEWHERE),
                             Cancel("c1-L3", ANSWERED_ELSEWHERE)}
    assert ANSWERED_ELSEWHERE == 26
    assert r.done and r.result().answered == B
    res = {leg.target.user: leg for leg in r.result().legs}
    assert res["a"].cancelled and res["c"].cancelled and res["b"].answered


def test_given_the_claim_lost_then_that_leg_is_hung_up_as_busy_and_the_others_ring_on() -> None:
    r, _ = race(A, B)
    r.answered("c1-L1", 101.0)
    assert r.claimed("c1-L1", False, 101.001) == [Cancel("c1-L1")]  # BYE, normal clearing
    assert not r.done and r.live_legs == ["c1-L2"]
    r.answered("c1-L2", 102.0)
    assert r.claimed("c1-L2", True, 102.001) == [Connect("c1-L2")]
    res = {leg.target.user: leg for leg in r.result().legs}
    assert res["a"].claimed_elsewhere and not res["a"].answered and res["a"].cause == 17
    assert r.result().answered == B


def test_given_the_only_leg_s_claim_lost_then_the_race_is_over_unanswered_no_alternate() -> None:
    r, _ = race(A_WITH_ALT)  # busy is an alternate cause here, yet the person is on a call
    r.answered("c1-L1", 101.0)
    assert r.claimed("c1-L1", False, 101.001) == [Cancel("c1-L1")]
    assert r.done and r.result().answered is None
    assert r.result().legs[0].claimed_elsewhere


def test_given_answer_then_each_leg_has_ring_start_and_stop() -> None:
    r, _ = race(A, B)
    r.answered("c1-L2", 103.5)
    r.claimed("c1-L2", True, 103.5)
    r.destroyed("c1-L2", 16, 160.0)  # the conversation ends later: not a ring stop
    res = {leg.target.user: leg for leg in r.result().legs}
    assert (res["b"].started, res["b"].ended) == (100.0, 103.5)
    assert (res["a"].started, res["a"].ended) == (100.0, 103.5)


def test_given_two_answers_in_same_instant_then_the_second_waits_and_is_cancelled() -> None:
    r, _ = race(A, B)
    r.answered("c1-L1", 101.0)
    assert r.answered("c1-L2", 101.0) == []  # waits for the first one's claim
    assert r.answered("c1-L2", 101.0) == []  # (a duplicated event changes nothing)
    out = r.claimed("c1-L1", True, 101.0)
    assert out == [Cancel("c1-L2", ANSWERED_ELSEWHERE), Connect("c1-L1")]
    assert r.result().answered == A
    assert r.answered("c1-L2", 101.5) == [Cancel("c1-L2", ANSWERED_ELSEWHERE)]  # late


def test_given_two_answers_and_the_first_claim_lost_then_the_second_is_claimed() -> None:
    r, _ = race(A, B)
    r.answered("c1-L1", 101.0)
    r.answered("c1-L2", 101.0)
    assert r.claimed("c1-L1", False, 101.0) == [Cancel("c1-L1"), Claim("c1-L2", B)]
    assert not r.done
    assert r.claimed("c1-L2", True, 101.0) == [Connect("c1-L2")]
    assert r.result().answered == B


def test_given_a_waiting_answer_hangs_up_then_it_is_not_claimed() -> None:
    r, _ = race(A, B)
    r.answered("c1-L1", 101.0)
    r.answered("c1-L2", 101.0)
    assert r.destroyed("c1-L2", 16, 101.2) == []
    assert r.claimed("c1-L1", False, 101.3) == [Cancel("c1-L1")]
    assert r.done and r.result().answered is None


def test_given_a_stale_claim_outcome_then_nothing_happens() -> None:
    r, _ = race(A, B)
    assert r.claimed("c1-L1", True, 101.0) == []  # never asked
    assert r.winner is None and not r.done


def test_given_busy_primary_then_alternate_rings_at_once_with_its_own_ring_time() -> None:
    r, _ = race(A_WITH_ALT)
    out = r.destroyed("c1-L1", 17, 105.0)
    assert len(out) == 1 and isinstance(out[0], Originate)
    assert out[0].target.address == "+15557770001" and out[0].target.role == "alternate"
    assert out[0].target.user == "a"  # the alternate belongs to the same user
    assert r.next_deadline() == 125.0  # 20 s from when the alternate started
    assert not r.done


def test_given_no_answer_cause_then_alternate_not_rung() -> None:
    r, _ = race(A_WITH_ALT)
    assert r.destroyed("c1-L1", 19, 105.0) == []
    assert r.done and r.result().answered is None


def test_given_alternate_also_busy_then_race_over_without_third_leg() -> None:
    r, _ = race(A_WITH_ALT)
    alt = r.destroyed("c1-L1", 17, 101.0)[0]
    assert isinstance(alt, Originate)
    assert r.destroyed(alt.leg_id, 17, 102.0) == []
    assert r.done
    legs = r.result().legs
    assert [leg.via_alternate for leg in legs] == [False, True]


def test_given_no_contact_then_alternate_rings() -> None:
    r, _ = race(A_WITH_ALT)
    out = r.originate_failed("c1-L1", 100.0)
    assert len(out) == 1 and isinstance(out[0], Originate)
    assert r.result().legs[0].no_contact


def test_given_ring_time_over_then_legs_cancelled_as_timed_out() -> None:
    r, _ = race(A, B)
    assert r.expire(110.0) == []  # not yet
    out = r.expire(120.0)
    assert set(out) == {Cancel("c1-L1"), Cancel("c1-L2")}
    assert r.done and all(leg.timed_out for leg in r.result().legs)


def test_given_timeout_opt_in_then_alternate_rings_after_no_answer() -> None:
    r, _ = race(A_WITH_ALT, alternate_on_timeout=True)
    out = r.expire(120.0)
    assert Cancel("c1-L1") in out
    assert any(isinstance(a, Originate) and a.target.role == "alternate" for a in out)


def test_given_answer_after_timeout_cancel_then_not_connected() -> None:
    r, _ = race(A)
    r.expire(120.0)
    assert r.answered("c1-L1", 120.01) == [Cancel("c1-L1")]  # not answered elsewhere
    assert r.result().answered is None


def test_given_alternate_caller_id_setting_then_alternate_leg_uses_it() -> None:
    r, _ = race(A_WITH_ALT, caller_id=None, alternate_caller_id="+15550100")
    out = r.destroyed("c1-L1", 17, 101.0)
    assert isinstance(out[0], Originate) and out[0].caller_id == "+15550100"


def test_given_sequence_offset_then_leg_ids_continue() -> None:
    group = RingGroup(targets=(A,), timeout=5)
    r = RingRace(group, "c1")
    acts = r.start(0.0, first_seq=4)
    assert isinstance(acts[0], Originate) and acts[0].leg_id == "c1-L5"
    assert r.next_seq == 5
