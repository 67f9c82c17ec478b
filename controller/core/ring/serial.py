"""Serial: members one at a time, in the configured order, ``ring_time`` each."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from controller.core.flows.departments import Department
from controller.core.flows.settings import MAX_SIMULTANEOUS
from controller.core.model import UserFacts
from controller.core.ring.base import RingPlan, in_member_order, one_by_one


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
    order = in_member_order(dept, eligible)
    return RingPlan(one_by_one(order, dept.ring_time)).repeated(rounds or dept.rounds)
