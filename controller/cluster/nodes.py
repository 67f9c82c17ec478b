"""One Asterisk node as a controller sees it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial

from controller.adapters.ami import Ami
from controller.adapters.ari.client import AriClient
from controller.adapters.ari.events import Event
from controller.adapters.ari.stream import EventStream
from controller.config import AriNode

log = logging.getLogger("callctl.cluster")


class Node:
    """One Asterisk node as a controller sees it: ARI client, event stream, AMI, lease."""

    def __init__(self, spec: AriNode, app: str, ami_user: str,
                 on_event: Callable[[str, Event], None],
                 on_connect: Callable[[str], Awaitable[None]]) -> None:
        """``on_event(node, event)`` for each event; ``on_connect(node)`` after each
        (re)connect of its event websocket."""
        self.name = spec.name
        self.spec = spec
        self._on_event = on_event
        self._on_connect = on_connect
        self.ari = AriClient(spec.url, spec.user, spec.password, app)
        self.stream = self._new_stream()
        self.ami = Ami(spec.ami_host or spec.host, spec.ami_port, ami_user, spec.ami_secret)
        self.ami_ok = False
        self.held = False
        self.task: asyncio.Task[None] | None = None
        self.free_since: float | None = None
        self.down_since: float | None = None

    def _new_stream(self) -> EventStream:
        return EventStream(self.ari, partial(self._on_event, self.name),
                           on_connect=partial(self._on_connect, self.name))

    def __repr__(self) -> str:
        return f"Node({self.name!r}, held={self.held})"

