"""The outage path: each DID's failover target written into the held nodes' AstDB, read
by the dialplan while no controller runs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from controller.adapters.ami import AmiError, failover_value
from controller.cluster.manager import Cluster
from controller.core.flows.schema import outage_extras, outage_targets
from controller.shell.live import LiveFlows

log = logging.getLogger("callctl.runtime")


class OutageSync:
    """Keeps the outage failover targets in the held nodes' AstDB."""

    # What this role uses of the controller (controller.shell.runtime.Controller):
    cluster: Cluster[Any]
    flows: LiveFlows
    ami_ok: bool

    # ------------------------------------------------------------------ outage failover

    async def sync_outage(self) -> None:
        """Write each DID's outage failover target into AstDB (read by the dialplan when
        this controller is down); remove stale ones. Never fatal."""
        live = self.flows.current
        if live is None:
            return
        extras = outage_extras(live[1])
        wanted = {did: failover_value(num, box, *extras.get(did, ("", "")))
                  for did, (num, box) in outage_targets(live[1]).items()}
        for node in self.cluster.held():  # each node's own AstDB
            try:
                if not node.ami_ok:
                    await node.ami.connect()
                    node.ami_ok = True
                written, removed = await node.ami.sync_failover(wanted)
            except (AmiError, OSError, TimeoutError) as e:
                node.ami_ok = False
                await node.ami.close()
                log.warning("node %s: outage failover targets not written to AstDB (AMI: %s); "
                            "retrying", node.name, e)
                continue
            finally:
                self.ami_ok = self.cluster.first.ami_ok
            if written or removed:
                log.info("node %s: outage failover targets: %d written, %d removed "
                         "(version %d)", node.name, written, removed, live[0])

    async def _outage_keeper(self) -> None:
        """Re-sync periodically: AstDB may be wiped by an Asterisk reinstall or restart."""
        while True:
            await asyncio.sleep(30)
            await self.sync_outage()
