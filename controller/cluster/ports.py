"""What the cluster needs of the process it runs in and of a live call.

``cluster/`` sits below ``shell/`` (README "Layout"): it never imports ``controller.shell``.
The shell's ``Controller`` is a :class:`Host`, its ``Call`` a :class:`LiveCall`, and the
controller hands the cluster a :class:`CallKit` to make calls of its own kind when it adopts
one (``controller.cluster.adoption``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from controller.adapters.ari.client import AriClient
from controller.adapters.ari.events import Event
from controller.adapters.redis import RedisStore
from controller.config import Settings
from controller.core.flows.schema import FlowSet
from controller.core.model import CallContext, DialTarget, TraceEntry


class LiveCall(Protocol):
    """A call driven by this process, as the cluster reads and changes it (lease, handover,
    adoption). ``controller.shell.call.Call`` is one."""

    id: str
    node: str
    ari: AriClient
    ctx: CallContext
    version: int
    started: float
    result: str
    abandoned: bool
    ending: bool
    answered: bool
    answered_at: float | None
    caller_up: bool
    connected_leg: str | None
    winner: Any
    """The leg that answered (see :attr:`CallKit.winner`), or None."""
    bridge_id: str | None
    _bridge_task: asyncio.Task[None] | None
    """Set to a done future by an adopter whose bridge exists already."""
    busy_users: set[str]
    legs: set[str]
    leg_seq: int
    play_seq: int
    task: asyncio.Task[None] | None

    @property
    def answering(self) -> bool: ...

    def feed(self, ev: Event) -> None: ...

    async def settled(self) -> None: ...

    async def resume(self, add: Sequence[str] | None = None) -> None: ...

    async def _teardown(self) -> None: ...

    def connect_entries(self) -> list[TraceEntry]: ...


C = TypeVar("C", bound=LiveCall)


class FlowSource(Protocol):
    @property
    def current(self) -> tuple[int, FlowSet] | None:
        """The live flow version and flow set (None before the first publish)."""
        ...


class Host(Protocol[C]):
    """The controller process the cluster serves (``controller.shell.runtime.Controller``)."""

    calls: dict[str, C]
    """Live calls by id: the cluster adds adopted ones and drops handed-over ones."""

    @property
    def settings(self) -> Settings: ...

    @property
    def app(self) -> str: ...

    @property
    def store(self) -> RedisStore: ...

    @property
    def flows(self) -> FlowSource: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...

    def on_node_event(self, node: str, ev: Event) -> None:
        """An event from ``node``'s websocket."""
        ...

    async def resync(self, node: str | None = None) -> None:
        """After a (re)connect to ``node``."""
        ...

    async def sync_outage(self) -> None:
        """Write the outage failover targets into the held nodes' AstDB."""
        ...

    def local_busy(self) -> set[str]:
        """Users on a call of this process (Redis away)."""
        ...

    def background(self, aw: Awaitable[Any]) -> None:
        """A side job, failures logged."""
        ...

    def spawn(self, aw: Awaitable[Any]) -> asyncio.Task[Any]:
        """A task of the process, cancelled when it closes."""
        ...

    def drive(self, call: C, aw: Awaitable[None]) -> None:
        """Run ``aw`` as ``call``'s task (waited for when the process closes)."""
        ...


@dataclass(frozen=True)
class CallKit(Generic[C]):
    """How the cluster makes calls of the shell's kind (adoption) and reads a leg's tag."""

    new: Callable[[str, CallContext, int], C]
    """A call object for an adopted call: ``(call id, context, flow version)``; not started."""
    winner: Callable[[str, DialTarget, float, float, bool], Any]
    """The record of the leg that answered: ``(leg, target, started ringing, answered at,
    via an alternate)``."""
    target_var: str
    """The channel variable every leg carries: whom it rings (JSON, ``target_from_json``)."""
    target_from_json: Callable[[str | None], DialTarget | None]
