"""The simulate operation: input checks and live-state lookups around
:func:`controller.ops.simulate.simulate_flow`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from controller.core.callerid import normalise, valid_did
from controller.core.flows.schema import FlowSet
from controller.core.model import valid_endpoint
from controller.core.patterns import DTMF_DIGITS
from controller.ops.blocklist import load_blocklist
from controller.ops.context import Context, redis_errors
from controller.ops.errors import OpsError
from controller.ops.flows import published
from controller.ops.parse import parse_at
from controller.ops.simulate import SimLookups, simulate_flow
from controller.ops.timeline import describe
from controller.shell.blocklist import BLOCK_CAUSE


def _who(value: object) -> bool:
    """A user id, an endpoint or a number: what ``answer`` and ``busy`` may name."""
    return isinstance(value, str) and (valid_endpoint(value) or valid_did(value))


@redis_errors
async def simulate(ctx: Context, *, did: str, caller: str = "", at: str | datetime | None = None,
                   tz: str | None = None, digits: Sequence[str] = (),
                   flowset: FlowSet | None = None, answer: str | None = None,
                   busy: Sequence[str] = (),
                   ) -> dict[str, Any]:
    """Dry-run a call (see :func:`simulate_flow`); ``flowset``: a draft instead of the
    published flows; ``busy``: users (or addresses) whose phones answer 486. Reads live
    state, changes nothing."""
    if not isinstance(did, str) or not valid_did(did):
        raise OpsError(400, f"{did!r} is not a DID (digits, optional leading +)", "did")
    norm = normalise(caller or "")
    if caller and not norm and caller.strip().lower() not in ("", "withheld", "anonymous"):
        raise OpsError(400, f"{caller!r} is not a caller number", "from")
    for i, d in enumerate(digits):
        if not isinstance(d, str) or any(c not in DTMF_DIGITS for c in d):
            raise OpsError(400, f"{d!r} is not DTMF (0-9 * # A-D)", f"digits[{i}]")
    for i, b in enumerate(busy):
        if not _who(b):
            raise OpsError(400, f"{b!r} is not a user id, endpoint or number", f"busy[{i}]")
    if answer is not None and not _who(answer):
        raise OpsError(400, f"{answer!r} is not a user id, endpoint, number or 'first'",
                       "answer")
    version: int | None = None
    if flowset is None:
        version, fs = await published(ctx)
    else:
        fs = flowset
    when = at if isinstance(at, datetime) else parse_at(at, tz or fs.settings.timezone)
    base = {"did": did, "caller": norm, "at": when.isoformat(timespec="minutes"),
            "flow_version": version, "draft": flowset is not None}
    hit = (await load_blocklist(ctx)).match(norm)
    if hit is not None:
        return {**base, "result": "blocked", "blocked_by": hit, "cause": BLOCK_CAUSE,
                "path": [], "rings": [], "first_ring": None, "ring_order": [],
                "skips": [], "steps": [describe({"kind": "blocked", "pattern": hit,
                                                 "cause": BLOCK_CAUSE})],
                "notes": [], "prompts": [], "digits_unused": list(digits), "trace": []}
    if fs.flow_for_did(did) is None:
        return {**base, "result": "no_flow", "cause": 1, "path": [], "rings": [],
                "first_ring": None, "ring_order": [], "skips": [],
                "steps": [f"no published flow for DID {did}: rejected with cause 1"],
                "notes": [], "prompts": [], "digits_unused": list(digits), "trace": []}
    tests = frozenset(await ctx.store.failover_tests())

    async def cursor(key: str) -> int:
        raw = await ctx.r.get(ctx.keys.cursor(key))
        return int(raw) if raw else 0

    lookups = SimLookups(facts=ctx.store.facts, sticky=ctx.store.get_sticky,
                         cursor=cursor)
    res = await simulate_flow(fs, did=did, caller=norm, at=when, digits=digits,
                              answer=answer, busy=busy, lookups=lookups,
                              failover_tests=tests)
    return {**res, **base}
