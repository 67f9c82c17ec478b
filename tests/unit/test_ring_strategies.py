from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from controller.core.flows.departments import Department
from controller.core.model import UserFacts
from controller.core.ring import (
    CAP_REACHED,
    RingPlan,
    Wave,
    balanced,
    longest_idle,
    plan_for,
    serial,
    simultaneous,
)


def dept(strategy: str = "serial", members: str = "a b c", **kw: object) -> Department:
    return Department.model_validate(
        {"id": "d", "strategy": strategy, "members": members.split(), **kw})


def users(p: RingPlan) -> list[tuple[str, ...]]:
    return [w.users for w in p.waves]


def test_serial_order_and_ring_time() -> None:
    d = dept(ring_time=15)
    p = serial.plan(d, ["c", "a", "b"], {})  # member order wins over the eligible order
    assert p.waves == (Wave(("a",), 15), Wave(("b",), 15), Wave(("c",), 15))
    assert users(serial.plan(d, ["a", "c", "zed"], {})) == [("a",), ("c",)]


def test_rounds_repeat_the_whole_round() -> None:
    p = serial.plan(dept(rounds=2), ["a", "b"], {})
    assert users(p) == [("a",), ("b",), ("a",), ("b",)]
    assert p.users == ("a", "b")


def test_simultaneous_cap() -> None:
    d = dept("simultaneous", "a b c d e f g", ring_time=25)
    p = simultaneous.plan(d, list("abcdefg"), {})
    assert p.waves == (Wave(tuple("abcde"), 25),)
    assert p.skipped == (("f", CAP_REACHED), ("g", CAP_REACHED))
    # ineligible members do not use up the cap
    p = simultaneous.plan(d, list("bcdefg"), {})
    assert p.waves[0].users == tuple("bcdef") and p.skipped == (("g", CAP_REACHED),)
    assert simultaneous.plan(d, list("abc"), {}, max_simultaneous=2).waves[0].users == ("a", "b")
    assert simultaneous.plan(d, [], {}).waves == ()


def test_balanced_six_calls_three_agents() -> None:
    d = dept("balanced")
    firsts = [balanced.plan(d, ["a", "b", "c"], {}, cursor=c).waves[0].users[0]
              for c in range(6)]
    assert firsts == ["a", "b", "c", "a", "b", "c"]
    assert users(balanced.plan(d, ["a", "b", "c"], {}, cursor=4)) == [("b",), ("c",), ("a",)]


def test_balanced_with_an_opted_out_member_stays_fair() -> None:
    # x is opted out: off the roster (as the ring node passes it), so a, b, c share evenly
    d = dept("balanced", "a b x c")
    roster = ["a", "b", "c"]
    firsts = [balanced.plan(d, roster, {}, cursor=c, roster=roster).waves[0].users[0]
              for c in range(6)]
    assert firsts == ["a", "b", "c", "a", "b", "c"]
    assert Counter(firsts) == {"a": 2, "b": 2, "c": 2}


def test_balanced_busy_member_keeps_its_slot() -> None:
    # b is busy (on the roster, not eligible): b's turn passes to c, nobody else shifts
    d = dept("balanced")
    roster = ["a", "b", "c"]
    firsts = [balanced.plan(d, ["a", "c"], {}, cursor=c, roster=roster).waves[0].users[0]
              for c in range(3)]
    assert firsts == ["a", "c", "c"]
    assert users(balanced.plan(d, ["a", "c"], {}, cursor=1, roster=roster)) == [("c",), ("a",)]


def test_balanced_default_roster_is_full_member_list() -> None:
    d = dept("balanced")
    assert users(balanced.plan(d, ["a", "c"], {}, cursor=1)) == [("c",), ("a",)]
    assert users(balanced.plan(d, ["a", "b", "c"], {}, cursor=None))[0] == ("a",)


def test_longest_idle() -> None:
    d = dept("longest_idle", "a b c d e")
    facts = {"a": UserFacts(last_call_end=300.0), "b": UserFacts(last_call_end=100.0),
             "c": UserFacts(), "d": UserFacts(last_call_end=100.0)}
    # never called (c, e) first in member order, then oldest end; b/d tie -> member order
    assert users(longest_idle.plan(d, list("abcde"), facts)) == [
        ("c",), ("e",), ("b",), ("d",), ("a",)]


def test_sticky_first_then_strategy() -> None:
    d = dept("serial", sticky=True)
    p = plan_for(d, ["a", "b", "c"], {}, sticky_user="b")
    assert users(p) == [("b",), ("a",), ("c",)]
    d = dept("simultaneous", sticky=True, ring_time=18)
    p = plan_for(d, ["a", "b", "c"], {}, sticky_user="c")
    assert p.waves == (Wave(("c",), 18), Wave(("a", "b"), 18))


def test_sticky_agent_ineligible_or_unknown_is_ignored() -> None:
    d = dept("serial", sticky=True)
    assert users(plan_for(d, ["a", "c"], {}, sticky_user="b")) == [("a",), ("c",)]
    assert users(plan_for(d, ["a", "c"], {}, sticky_user="stranger")) == [("a",), ("c",)]
    # no sticky layer configured: the returned agent is not used
    assert users(plan_for(dept(), ["a", "b"], {}, sticky_user="b")) == [("a",), ("b",)]


def test_sticky_with_rounds_and_balanced() -> None:
    d = dept("balanced", sticky=True, rounds=2)
    p = plan_for(d, ["a", "b", "c"], {}, sticky_user="c", cursor=1)
    assert users(p) == [("c",), ("b",), ("a",)] * 2


def test_plan_for_dispatches() -> None:
    assert users(plan_for(dept("simultaneous"), ["a", "b"], {})) == [("a", "b")]
    assert users(plan_for(dept("balanced"), ["a", "b", "c"], {}, cursor=2))[0] == ("c",)


@given(n=st.integers(1, 8), k=st.integers(1, 4), start=st.integers(0, 10_000),
       off=st.sets(st.integers(0, 7)))
def test_balanced_equal_shares_over_a_stable_roster(n: int, k: int, start: int,
                                                    off: set[int]) -> None:
    """Any n consecutive cursor values give each on-duty member exactly one first ring."""
    members = [f"u{i}" for i in range(n)]
    roster = [m for i, m in enumerate(members) if i not in off] or members[:1]
    d = Department(id="d", strategy="balanced", members=members)
    firsts = Counter(
        balanced.plan(d, roster, {}, cursor=c, roster=roster).waves[0].users[0]
        for c in range(start, start + k * len(roster))
    )
    assert firsts == dict.fromkeys(roster, k)
