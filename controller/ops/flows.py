"""The published flows: the live version, publish, rollback, the versions."""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError

from controller.adapters.redis import flowstore
from controller.core.flows.loader import LoadResult
from controller.core.flows.schema import FlowSet
from controller.ops.context import Context, redis_errors
from controller.ops.errors import OpsError


async def live_flows(ctx: Context) -> tuple[int, FlowSet] | None:
    """The live version and its flows (the running controller's, else Redis'); None: nothing
    is published."""
    ctl = ctx.controller
    if ctl is not None and ctl.flows.current is not None:
        return ctl.flows.current
    try:
        return await flowstore.load_live(ctx.r, prefix=ctx.p)
    except (RedisError, OSError) as e:
        raise OpsError(503, f"redis unavailable: {e.__class__.__name__}") from None


async def published(ctx: Context) -> tuple[int, FlowSet]:
    """The live flows, or OpsError(409) when nothing is published."""
    live = await live_flows(ctx)
    if live is None:
        raise OpsError(409, "no flows are published yet (callctl publish DIR)")
    return live


@redis_errors
async def publish(ctx: Context, res: LoadResult) -> flowstore.Published:
    """Publish loaded flow files (without errors) as the live version (the same content as
    the live version: no new version, ``status`` unchanged)."""
    return await flowstore.publish_flows(ctx.r, res, prefix=ctx.p)


@redis_errors
async def rollback(ctx: Context, version: int | None) -> int:
    """Make ``version`` (None: the previous one) live; OpsError(404) when there is none."""
    try:
        return await flowstore.rollback(ctx.r, version, prefix=ctx.p)
    except flowstore.RollbackError as e:
        raise OpsError(404, str(e), "version") from None


@redis_errors
async def list_versions(ctx: Context) -> list[dict[str, Any]]:
    """Every published version, oldest first."""
    rows = await flowstore.list_versions(ctx.r, prefix=ctx.p)
    return [{"version": v.version, "published_at": v.published_at, "files": list(v.files),
             "flows": v.flows, "dids": v.dids, "live": v.live} for v in rows]
