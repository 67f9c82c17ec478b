"""Simultaneous (ring-all): one wave of at most ``max_simultaneous`` (5) eligible members.

The first ``max_simultaneous`` eligible members in member order ring; the others are skipped
with ``cap_reached`` (the linter rejects departments with more than 5 members, but members can
still exceed the cap when the sticky layer is on, or a deployment lowers the cap)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from controller.core.flows.departments import Department
from controller.core.flows.settings import MAX_SIMULTANEOUS
from controller.core.model import UserFacts
from controller.core.ring.base import CAP_REACHED, RingPlan, Wave, in_member_order


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
    cap = max(1, min(max_simultaneous, MAX_SIMULTANEOUS))
    ring, over = order[:cap], order[cap:]
    waves = (Wave(tuple(ring), dept.ring_time),) if ring else ()
    return RingPlan(waves, tuple((u, CAP_REACHED) for u in over)).repeated(
        rounds or dept.rounds
    )
