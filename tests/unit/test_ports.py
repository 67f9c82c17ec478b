"""The shell fills the ports the lower layers define (no type checker runs in CI yet, so this
keeps them from drifting): the Controller has every member of ``cluster.ports.Host`` and
``shell.ports.CallHost``, a Call every member of ``cluster.ports.LiveCall``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from controller.cluster.ports import Host, LiveCall
from controller.config import load_settings
from controller.core.model import CallContext
from controller.shell.call import Call
from controller.shell.ports import CallHost
from controller.shell.runtime import Controller


def members(protocol: type) -> set[str]:
    """What a Protocol declares: its annotated attributes, methods and properties."""
    out = set(getattr(protocol, "__annotations__", {}))
    out |= {n for n, v in vars(protocol).items()
            if callable(v) or isinstance(v, property)}
    return {n for n in out if not (n.startswith("__") and n.endswith("__"))}


def missing(obj: Any, protocol: type) -> list[str]:
    return sorted(n for n in members(protocol) if not hasattr(obj, n))


@pytest.fixture
def ctl() -> Controller:
    return Controller(load_settings({}))


def test_the_protocols_declare_something() -> None:
    assert {"calls", "spawn", "drive", "resync", "on_node_event"} <= members(Host)
    assert {"feed", "resume", "abandoned", "answering", "_teardown"} <= members(LiveCall)
    assert {"cluster", "call_ended", "store_failed"} <= members(CallHost)


def test_the_controller_is_the_clusters_host_and_the_calls(ctl: Controller) -> None:
    assert missing(ctl, Host) == []
    assert missing(ctl, CallHost) == []


def made_by_the_cluster(ctl: Controller) -> Call:
    """A call as adoption makes one (a Call needs a running loop: its inbox)."""
    async def make() -> Call:
        ctx = CallContext(call_id="c1", did="+15550100", caller="", flowset=None,
                          now=ctl.clock)
        return ctl.cluster.kit.new("c1", ctx, 3)

    return asyncio.run(make())


def test_the_cluster_makes_calls_of_the_shells_kind(ctl: Controller) -> None:
    call = made_by_the_cluster(ctl)
    assert isinstance(call, Call) and call.ctl is ctl and call.version == 3
    assert missing(call, LiveCall) == []
