"""Longest idle: the member whose last call ended longest ago rings first, then the next.

Order: members who never had a call (``last_call_end is None``) first, then by
``last_call_end`` ascending; ties keep the member order. One by one, ``ring_time`` each."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from controller.core.flows.departments import Department
from controller.core.flows.settings import MAX_SIMULTANEOUS
from controller.core.model import UserFacts
from controller.core.ring.base import RingPlan, in_member_order, one_by_one


def idle_key(facts: Mapping[str, UserFacts], user: str) -> tuple[int, float]:
    f = facts.get(user)
    last = f.last_call_end if f is not None else None
    return (0, 0.0) if last is None else (1, last)


def plan(
    dept: Department,
    eligible: Collection[str],
    facts: Mapping[str, UserFacts],
    *,
    cursor: int | None = None,
    roster: Sequence[str] | None = None,
    max_simultaneous: int = MAX_SIMULTANEOUS,
    rounds: int | None = None,
) -> RingPlan:
    order = sorted(in_member_order(dept, eligible), key=lambda u: idle_key(facts, u))  # stable
    return RingPlan(one_by_one(order, dept.ring_time)).repeated(rounds or dept.rounds)
