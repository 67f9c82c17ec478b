"""A call's start state is written in the background; over redis-py's connection pool it may
reach Redis after the call's own end (START_CALL then answers ENDED and writes nothing:
tests/integration/test_leases.py). The cluster must then neither lease the call (its lease
would be renewed for a call that is over) nor let it go as another controller's.

No event loop and no network: the coroutine is driven by hand (nothing in it suspends)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from controller.adapters.redis.leases import ENDED, STARTED
from controller.config import load_settings
from controller.shell.runtime import Controller


class Leases:
    def __init__(self, answer: int) -> None:
        self.answer = answer
        self.released: list[str] = []

    async def start_call(self, call_id: str, node: str, fields: dict[str, str]) -> int:
        return self.answer

    async def release_call(self, call_id: str) -> bool:
        self.released.append(call_id)
        return True


def start(ctl: Controller, call: Any) -> None:
    coro = ctl.cluster.start_call(call, {"started": "1"})
    try:
        coro.send(None)
    except StopIteration:
        return
    raise AssertionError("start_call suspended")


def test_a_start_that_found_the_call_ended_neither_leases_nor_lets_go(tmp_path: Any) -> None:
    ctl = Controller(load_settings({"CALLCTL_RUN_DIR": str(tmp_path)}))
    ctl.cluster.leases = Leases(ENDED)  # type: ignore[assignment]
    call = SimpleNamespace(id="c-1", node="node1", abandoned=False)
    start(ctl, call)
    assert ctl.cluster._leased == set() and not call.abandoned
    ctl.cluster.leases = Leases(STARTED)  # type: ignore[assignment]
    start(ctl, SimpleNamespace(id="c-2", node="node1", abandoned=False))
    assert ctl.cluster._leased == {"c-2"}
