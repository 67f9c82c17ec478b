"""One Asterisk node as a controller sees it."""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import TYPE_CHECKING

from controller.adapters.ami import Ami
from controller.adapters.ari.client import AriClient
from controller.adapters.ari.stream import EventStream
from controller.config import AriNode

if TYPE_CHECKING:
    from controller.shell.runtime import Controller

log = logging.getLogger("callctl.cluster")


class Node:
    """One Asterisk node as a controller sees it: ARI client, event stream, AMI, lease."""

    def __init__(self, ctl: Controller, spec: AriNode) -> None:
        self.ctl = ctl
        self.name = spec.name
        self.spec = spec
        self.ari = AriClient(spec.url, spec.user, spec.password, ctl.app)
        self.stream = self._new_stream()
        self.ami = Ami(spec.ami_host or spec.host, spec.ami_port, ctl.settings.ami_user,
                       spec.ami_secret)
        self.ami_ok = False
        self.held = False
        self.task: asyncio.Task[None] | None = None
        self.free_since: float | None = None
        self.down_since: float | None = None

    def _new_stream(self) -> EventStream:
        return EventStream(self.ari, partial(self.ctl.on_node_event, self.name),
                           on_connect=partial(self.ctl.resync, self.name))

    def __repr__(self) -> str:
        return f"Node({self.name!r}, held={self.held})"

