"""The published flows, as the operations read them."""
from __future__ import annotations

from redis.exceptions import RedisError

from controller.core.flows.schema import FlowSet
from controller.ops.errors import OpsError


class FlowsOps:

    async def live_flows(self) -> tuple[int, FlowSet] | None:
        ctl = self.controller
        if ctl is not None and ctl.flows.current is not None:
            return ctl.flows.current  # type: ignore[no-any-return]
        from controller.adapters.redis import flowstore as publish

        try:
            return await publish.load_live(self.r, prefix=self.p)
        except (RedisError, OSError) as e:
            raise OpsError(503, f"redis unavailable: {e.__class__.__name__}") from None

    async def _flowset(self) -> tuple[int, FlowSet]:
        live = await self.live_flows()
        if live is None:
            raise OpsError(409, "no flows are published yet (callctl publish DIR)")
        return live
