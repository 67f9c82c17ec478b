"""Failover tests on a line (a DID or a department)."""

from __future__ import annotations

from typing import Any

from controller.core.callerid import valid_did
from controller.core.patterns import ID_RE
from controller.ops.context import Context, redis_errors
from controller.ops.errors import OpsError
from controller.ops.flows import live_flows, published
from controller.ops.parse import clean_by


def _check_line(line: Any) -> None:
    """A failover test's line: a DID (``+`` and digits) or a department id, else 400."""
    if not isinstance(line, str) or len(line) > 64 or not (
            valid_did(line) or ID_RE.fullmatch(line)):
        raise OpsError(400, f"{str(line)[:80]!r} is not a DID (+ and digits) or a "
                       "department id", "line")


@redis_errors
async def start_test(ctx: Context, line: str, seconds: int, *, by: str) -> dict[str, Any]:
    _check_line(line)
    _, fs = await published(ctx)
    lines = set(fs.did_map) | set(fs.departments)
    if line not in lines:
        raise OpsError(404, f"{line!r} is not a published DID or department (known: "
                       f"{', '.join(sorted(lines)) or 'none'})", "line")
    if not isinstance(seconds, int) or not 0 < seconds <= 7 * 86400:
        raise OpsError(400, "duration must be 1 s to 7 days", "seconds")
    until = await ctx.store.failover_test_start(line, seconds, clean_by(by))
    return {"line": line, "until": until, "by": clean_by(by)}


@redis_errors
async def stop_test(ctx: Context, line: str, *, by: str) -> dict[str, Any]:
    """Stop the test on a line: 404 when the line is neither published nor under a test
    (a published line without a test: ``stopped`` false)."""
    _check_line(line)
    if line not in await ctx.store.failover_tests():
        live = await live_flows(ctx)
        known = set(live[1].did_map) | set(live[1].departments) if live else set()
        if line not in known:
            raise OpsError(404, f"{line!r} is not a published DID or department and has "
                           "no failover test", "line")
    stopped = await ctx.store.failover_test_stop(line, clean_by(by))
    return {"line": line, "stopped": stopped}


@redis_errors
async def test_status(ctx: Context, limit: int = 20) -> dict[str, Any]:
    return {"active": await ctx.store.failover_tests(),
            "events": await ctx.store.failover_events(limit)}
