"""The operations as one object (composed of the per-operation classes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.adapters.redis import RedisStore
from controller.ops.audit import AuditOps
from controller.ops.blocklist import BlocklistOps
from controller.ops.calls import CallsOps
from controller.ops.departments import DepartmentsOps
from controller.ops.dryrun import SimulateOps
from controller.ops.failover import FailoverOps
from controller.ops.flows import FlowsOps
from controller.ops.status import StatusOps
from controller.ops.users import UsersOps


class Ops(FlowsOps, StatusOps, CallsOps, UsersOps, AuditOps, DepartmentsOps,
          BlocklistOps, FailoverOps, SimulateOps):
    """The operations, over one RedisStore. ``controller``: the running Controller when the
    admin API runs inside it (its live flows and ARI state are used); None in the CLI."""

    def __init__(self, store: RedisStore, settings: Any = None, *,
                 controller: Any = None) -> None:
        self.store = store
        self.settings = settings
        self.controller = controller
        self.p = store.p
        self.r = store.redis
        self._devices: tuple[float, dict[str, Mapping[str, str]] | None] | None = None
