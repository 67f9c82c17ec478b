"""What a live call needs of the controller process it runs in.

``controller.shell.call`` types its controller with :class:`CallHost` instead of importing
``controller.shell.runtime`` (which imports the call: no import circle).
``controller.shell.runtime.Controller`` is one.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

from controller.adapters.ari.client import AriClient
from controller.adapters.redis import RedisStore
from controller.cluster.manager import Cluster
from controller.core.model import HttpResponse, UserFacts


class CallHost(Protocol):
    calls: dict[str, Any]
    """Live calls by id (a call removes itself when it is abandoned)."""
    last_facts: dict[str, UserFacts]
    """The last user facts read from Redis (routing from memory while it is away)."""

    @property
    def app(self) -> str: ...

    @property
    def trunk(self) -> str: ...

    @property
    def ari(self) -> AriClient:
        """The first node's ARI (a call is bound to its own node's by the cluster)."""
        ...

    @property
    def store(self) -> RedisStore: ...

    @property
    def cluster(self) -> Cluster[Any]: ...

    def background(self, aw: Awaitable[Any]) -> None: ...

    async def call_ended(self, call: Any) -> None: ...

    async def http_post(self, url: str, payload: dict[str, Any],
                        timeout: float) -> HttpResponse: ...

    def local_busy(self) -> set[str]: ...

    def local_cursor(self, key: str) -> int: ...

    def media_event_lost(self, call: Any, kind: str, ident: str, found_by: str) -> None: ...

    def notify_live(self, event: dict[str, Any]) -> None: ...

    def store_failed(self) -> None: ...

    async def write_sticky(self, department: str, caller: str, user: str,
                           ttl: int) -> None: ...

    def sticky_held(self, department: str, caller: str) -> str | None: ...
