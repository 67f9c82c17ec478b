"""Ring users, honouring opt-out, availability, busy, alternates and the ring strategy.

``ring_users`` is the one generator the department and extension nodes share. Its dialogue
with the runtime::

    facts  = yield LoadFacts(users + their `user:` alternates)
             (eligibility of each; skips are logged: ctx.log("skip", user=, reason=))
    sticky = yield GetSticky(dept, caller)          # sticky department and a caller number
    cursor = yield NextCursor("rr:<dept>")          # balanced only
             (plan: controller.core.ring.plan_for)
    for each wave:
        facts = yield LoadFacts(...)                # before every wave after the first
        res   = yield RingGroup(targets, timeout, alternate_causes=..., ...)
        answered -> yield SetSticky(...) if sticky; return the user id

Nothing is yielded after LoadFacts when nobody is eligible (no sticky read, no cursor move).

Alternates: built only when ``settings.forward_to_alternate`` and only for users who are
rung (an opted-out user is skipped entirely, so their alternate never rings). Forms:
``+E164`` -> PSTN via the trunk, ``sip:<ep>`` -> that endpoint, ``user:<id>`` -> that user's
endpoint, provided that user is eligible too (opt-out blocks every routed path) and is not
already ringing in the same wave. An alternate leg is tagged with the user who owns the slot
(``user:<id>`` alternates with that user, so the runtime marks the right person busy).

``total_timeout`` is measured with ``ctx.now()`` from the start of ``ring_users``; the wave in
which it runs out rings only for what is left (less than a second left: stop). Each leg has
its own ring time in the runtime, so an alternate started late in a wave may outlast it.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from datetime import datetime
from typing import Any

from controller.core.callerid import valid_did
from controller.core.eligibility import BUSY, check, effective_alternate
from controller.core.flows.departments import Department
from controller.core.flows.directory import User
from controller.core.flows.settings import Settings
from controller.core.model import (
    CallContext,
    Command,
    DialTarget,
    GetSticky,
    LegResult,
    LoadFacts,
    NextCursor,
    RingGroup,
    RingResult,
    SetSticky,
    UserFacts,
)
from controller.core.outcomes import alternate_causes, alternate_on_timeout, classify
from controller.core.ring import RingPlan, plan_for
from controller.core.ring.base import one_by_one

__all__ = [
    "DEFAULT_RING_TIME",
    "UNKNOWN_USER",
    "alternate_caller_id",
    "alternate_target",
    "ring_users",
]

DEFAULT_RING_TIME = 20
MIN_RING_SECONDS = 1.0
UNKNOWN_USER = "unknown_user"
"""Skip reason: the id is not a user of the flow set."""
SAME_WAVE = "already_ringing"
"""Skip reason (alternate): the alternate user is already ringing in this wave."""
TOTAL_TIMEOUT = "total_timeout"


def alternate_caller_id(settings: Settings, ctx: CallContext) -> str | None:
    """Caller id for alternate (and failover) legs: None keeps the caller's own number."""
    if settings.alternate_caller_id == "did" and ctx.did and valid_did(ctx.did):
        return ctx.did
    return None


def alternate_target(
    uid: str,
    users: Mapping[str, User],
    facts: Mapping[str, UserFacts],
    at: datetime,
    settings: Settings,
    ctx: CallContext,
    *,
    ringing: frozenset[str] = frozenset(),
) -> DialTarget | None:
    """The alternate DialTarget of ``uid`` now, or None (reasons logged)."""
    if not settings.forward_to_alternate:
        return None
    spec = effective_alternate(users[uid], facts.get(uid))
    if spec is None:
        return None
    if spec.startswith("user:"):
        other = spec[5:]
        if other == uid or other not in users:
            ctx.log("skip", user=other, role="alternate", of=uid, reason=UNKNOWN_USER)
            return None
        if other in ringing:
            ctx.log("skip", user=other, role="alternate", of=uid, reason=SAME_WAVE)
            return None
        e = check(users[other], facts.get(other), at, settings)
        if not e.ok:
            ctx.log("skip", user=other, role="alternate", of=uid, reason=e.reason)
            return None
        return DialTarget("sip", users[other].endpoint, user=other, role="alternate")
    try:
        if spec.startswith("sip:"):
            return DialTarget("sip", spec[4:], user=uid, role="alternate")
        return DialTarget("pstn", spec, user=uid, role="alternate")
    except ValueError as exc:  # a runtime override that slipped through: never dial a guess
        ctx.log("error", user=uid, role="alternate", error=str(exc))
        return None


def _alternate_users(uids: Sequence[str], users: Mapping[str, User]) -> list[str]:
    """``user:`` alternates named by the flow for ``uids`` (so one LoadFacts covers them)."""
    out = []
    for uid in uids:
        alt = users[uid].alternate
        if alt and alt.startswith("user:") and alt[5:] in users:
            out.append(alt[5:])
    return out


def _facts_for(
    uids: Sequence[str], users: Mapping[str, User]
) -> Generator[Command, Any, dict[str, UserFacts]]:
    wanted = tuple(dict.fromkeys([*uids, *_alternate_users(uids, users)]))
    got = yield LoadFacts(wanted)
    return dict(got or {})


def _more_facts(
    uids: Sequence[str],
    users: Mapping[str, User],
    facts: dict[str, UserFacts],
) -> Generator[Command, Any, None]:
    """Load facts of ``user:`` alternates set by a runtime override (not known up front)."""
    missing = []
    for uid in uids:
        alt = effective_alternate(users[uid], facts.get(uid))
        if alt and alt.startswith("user:") and alt[5:] in users and alt[5:] not in facts:
            missing.append(alt[5:])
    if missing:
        got = yield LoadFacts(tuple(dict.fromkeys(missing)))
        facts.update(got or {})


def ring_users(
    user_ids: Sequence[str],
    ctx: CallContext,
    *,
    dept: Department | None = None,
    ring_time: float | None = None,
) -> Generator[Command, Any, str | None]:
    """Ring ``user_ids`` (a department's members, or one extension); return who answered.

    With ``dept`` the department's strategy, sticky layer, ring time, rounds, total timeout
    and alternate-on-no-answer apply; without it users ring one by one for ``ring_time``
    (default 20 s). Returns the answering user id (the person, also set as
    ``ctx.answered_by``), or None.
    """
    fs = ctx.flowset
    users: Mapping[str, User] = fs.users
    settings: Settings = fs.settings
    started = ctx.now()

    known: list[str] = []
    for uid in dict.fromkeys(user_ids):
        if uid in users:
            known.append(uid)
        else:
            ctx.log("skip", user=uid, reason=UNKNOWN_USER)
    if not known:
        return None

    facts = yield from _facts_for(known, users)
    at = ctx.now()
    eligible: list[str] = []
    roster: list[str] = []  # on duty: eligible, or only busy (see controller.core.ring.balanced)
    for uid in known:
        e = check(users[uid], facts.get(uid), at, settings)
        if e.ok:
            eligible.append(uid)
        else:
            ctx.log("skip", user=uid, reason=e.reason)
        if e.ok or e.reason == BUSY:
            roster.append(uid)
    if not eligible:
        return None

    plan: RingPlan
    if dept is None:
        plan = RingPlan(one_by_one(eligible, ring_time or DEFAULT_RING_TIME))
    else:
        sticky_user: str | None = None
        if dept.sticky is not None and ctx.caller:
            sticky_user = yield GetSticky(dept.id, ctx.caller)
            if sticky_user:
                ctx.log("sticky", user=sticky_user, department=dept.id,
                        used=sticky_user in eligible and sticky_user in dept.members)
        cursor: int | None = None
        if dept.strategy == "balanced":
            cursor = yield NextCursor(f"rr:{dept.id}")
        plan = plan_for(dept, eligible, facts, cursor=cursor, sticky_user=sticky_user,
                        roster=roster, max_simultaneous=settings.max_simultaneous)
    for uid, reason in plan.skipped:
        ctx.log("skip", user=uid, reason=reason)

    causes = alternate_causes(settings, dept)
    on_timeout = alternate_on_timeout(dept, settings)
    alt_cid = alternate_caller_id(settings, ctx)
    omap = settings.outcomes

    for i, wave in enumerate(plan.waves):
        wave_users = list(wave.users)
        if i > 0:  # state may have changed while the previous wave rang
            facts.update((yield from _facts_for(wave_users, users)))
            at = ctx.now()
            still = []
            for uid in wave_users:
                e = check(users[uid], facts.get(uid), at, settings)
                if e.ok:
                    still.append(uid)
                else:
                    ctx.log("skip", user=uid, reason=e.reason, wave=i)
            wave_users = still
        if not wave_users:
            continue

        timeout = float(wave.timeout)
        if dept is not None and dept.total_timeout is not None:
            left = dept.total_timeout - (ctx.now() - started).total_seconds()
            if left < MIN_RING_SECONDS:
                ctx.log("skip", users=wave_users, reason=TOTAL_TIMEOUT, wave=i)
                break
            timeout = min(timeout, left)

        yield from _more_facts(wave_users, users, facts)
        at = ctx.now()
        ringing = frozenset(wave_users)
        targets = tuple(
            DialTarget("sip", users[uid].endpoint, user=uid,
                       alternate=alternate_target(uid, users, facts, at, settings, ctx,
                                                  ringing=ringing))
            for uid in wave_users
        )
        owner: dict[tuple[str, str], str] = {}
        for t in targets:
            owner[(t.kind, t.address)] = t.user or ""
            if t.alternate is not None:
                owner.setdefault((t.alternate.kind, t.alternate.address), t.user or "")
        ctx.log("ring", users=wave_users, timeout=timeout, wave=i)

        res: RingResult = yield RingGroup(
            targets,
            timeout,
            caller_id=None,
            alternate_causes=causes,
            alternate_on_no_contact=settings.forward_to_alternate,
            alternate_on_timeout=on_timeout,
            alternate_caller_id=alt_cid,
        )
        for leg in res.legs:
            log_leg(ctx, leg, classify(leg, omap, rejected_is_busy=settings.rejected_is_busy))
        if res.answered is not None:
            member = owner.get((res.answered.kind, res.answered.address))
            answered_by = res.answered.user or member
            ctx.answered_by = answered_by
            if dept is not None and dept.sticky is not None and ctx.caller and member:
                yield SetSticky(dept.id, ctx.caller, member, dept.sticky.ttl)
            return answered_by
    return None


def log_leg(ctx: CallContext, leg: LegResult, outcome: str) -> None:
    """One trace entry per ringing leg: who, how it ended and why, when."""
    ctx.log("leg", user=leg.target.user, address=leg.target.address, tech=leg.target.kind,
            role=leg.target.role, outcome=outcome, cause=leg.cause,
            via_alternate=leg.via_alternate, started=leg.started, ended=leg.ended)
