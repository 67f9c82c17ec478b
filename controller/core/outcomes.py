"""The outcome taxonomy: how a ringing leg ended, in words a flow author configures. Pure.

A leg is classified from the flags the runtime sets first, then from its Q.850 cause:

1. ``answered``                        -> ``answered``
2. ``cancelled`` (another leg won)      -> ``cancelled``
3. ``claimed_elsewhere`` (it answered, but its user was booked by another call at that
   instant: the same phone answered two calls) -> ``busy``
4. ``timed_out`` (we hit the ring time) -> ``no_answer``
5. ``no_contact`` (never created)       -> ``unreachable``
6. the cause, looked up in :class:`~controller.core.flows.settings.OutcomeMap`:
   ``busy`` / ``unreachable`` / ``no_answer`` / ``rejected`` (``rejected`` reads as ``busy``
   when ``settings.rejected_is_busy``).
7. a cause in no class, ``0`` or ``None`` -> ``unreachable``: the leg failed for a reason we
   cannot attribute to the person (a decline is 21, a busy phone 17), so it is reported
   against the line, not the agent. Note the runtime rings alternates only on *listed*
   causes: add a cause to ``unreachable`` to have alternates rung on it too.

Default mapping (``OutcomeMap()``), and where the causes come from: PJSIP translates the SIP
final response of a failed leg into the channel's hangup cause (chan_pjsip's
``hangup_sip2cause``). The full table, with which causes ring the alternate, is in
docs/flows.md ("How a ring attempt ends").

==========  =====================================  =================================
class       Q.850 causes                            typical SIP responses
==========  =====================================  =================================
busy        17 user busy                            486 Busy Here, 600 Busy Everywhere
rejected    21 call rejected                        603 Decline, 403 Forbidden
unreachable 1 unallocated number                    404 Not Found, 604, 485
            3 no route to destination               420
            18 no user responding                   408 Request Timeout (also timer B)
            19 no answer from user                  480 Temporarily Unavailable, 483
            20 subscriber absent                    (mobile switched off / out of range)
            27 destination out of order             502 Bad Gateway
            34 no circuit/channel available         503 Service Unavailable, other 5xx
            38 network out of order                 (trunk down)
            41 temporary failure                    500 Server Internal Error
            102 recovery on timer expiry            504 Server Time-out
no_answer   (none by default)                       our own ring timer ran out
==========  =====================================  =================================

480 is a phone saying it cannot take the call now (do-not-disturb, not registered behind a
proxy, offline): "unreachable", as MyOperator's Alternate Number and the README promise. A
phone that simply rings until ``ring_time`` is ``no_answer`` by the ``timed_out`` flag.

Alternates (the user's backup number) ring *at once* on busy and unreachable, as a MyOperator
"Alternate Number" does (and on rejected when it counts as busy); on no-answer only when the
department opted in (``alternate_on_no_answer``). ``settings.forward_to_alternate = false``
disables alternates everywhere.
"""

from __future__ import annotations

from typing import Literal

from controller.core.flows.departments import Department
from controller.core.flows.settings import OutcomeMap, Settings
from controller.core.model import LegResult

__all__ = [
    "OUTCOMES",
    "LegOutcome",
    "alternate_causes",
    "alternate_on_timeout",
    "classify",
    "classify_cause",
]

LegOutcome = Literal["answered", "busy", "unreachable", "no_answer", "rejected", "cancelled"]
OUTCOMES: tuple[LegOutcome, ...] = (
    "answered", "busy", "unreachable", "no_answer", "rejected", "cancelled",
)


def classify_cause(
    cause: int | None, omap: OutcomeMap, *, rejected_is_busy: bool = False
) -> Literal["busy", "unreachable", "no_answer", "rejected"]:
    """The class of a failed leg's cause alone (unlisted, 0 or None -> ``unreachable``)."""
    if cause is None:
        return "unreachable"
    if cause in omap.busy:
        return "busy"
    if cause in omap.rejected:
        return "busy" if rejected_is_busy else "rejected"
    if cause in omap.no_answer:
        return "no_answer"
    return "unreachable"  # listed as unreachable, or unknown


def classify(leg: LegResult, omap: OutcomeMap, *, rejected_is_busy: bool = False) -> LegOutcome:
    """How ``leg`` ended; see the module docstring for the precedence."""
    if leg.answered:
        return "answered"
    if leg.cancelled:
        return "cancelled"
    if leg.claimed_elsewhere:
        return "busy"
    if leg.timed_out:
        return "no_answer"
    if leg.no_contact:
        return "unreachable"
    return classify_cause(leg.cause, omap, rejected_is_busy=rejected_is_busy)


def alternate_causes(settings: Settings, dept: Department | None = None) -> frozenset[int]:
    """Causes on which the runtime rings a failed leg's alternate immediately.

    busy + unreachable, plus rejected when ``rejected_is_busy``, plus the no-answer causes
    (none by default; a flow may list some in ``outcomes.no_answer``) when the department set
    ``alternate_on_no_answer``. Empty when ``forward_to_alternate`` is off.
    """
    if not settings.forward_to_alternate:
        return frozenset()
    omap = settings.outcomes
    causes = set(omap.busy) | set(omap.unreachable)
    if settings.rejected_is_busy:
        causes |= set(omap.rejected)
    if dept is not None and dept.alternate_on_no_answer:
        causes |= set(omap.no_answer)
    return frozenset(causes)


def alternate_on_timeout(dept: Department | None, settings: Settings | None = None) -> bool:
    """Ring a member's alternate when the member let it ring out (department opt-in only)."""
    if settings is not None and not settings.forward_to_alternate:
        return False
    return bool(dept is not None and dept.alternate_on_no_answer)
