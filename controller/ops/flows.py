"""The published flows, as the operations read them."""

from __future__ import annotations

from redis.exceptions import RedisError

from controller.core.flows.schema import FlowSet
from controller.ops.context import Context
from controller.ops.errors import OpsError


async def live_flows(ctx: Context) -> tuple[int, FlowSet] | None:
    """The live version and its flows (the running controller's, else Redis'); None: nothing
    is published."""
    ctl = ctx.controller
    if ctl is not None and ctl.flows.current is not None:
        return ctl.flows.current  # type: ignore[no-any-return]
    from controller.adapters.redis import flowstore as publish

    try:
        return await publish.load_live(ctx.r, prefix=ctx.p)
    except (RedisError, OSError) as e:
        raise OpsError(503, f"redis unavailable: {e.__class__.__name__}") from None


async def published(ctx: Context) -> tuple[int, FlowSet]:
    """The live flows, or OpsError(409) when nothing is published."""
    live = await live_flows(ctx)
    if live is None:
        raise OpsError(409, "no flows are published yet (callctl publish DIR)")
    return live
