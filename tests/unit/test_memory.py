"""controller.shell.memory: the periodic malloc_trim and its setting (no network)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from controller.config import ConfigError, load_settings
from controller.shell import memory


def test_trim_every_minute_by_default_and_zero_turns_it_off() -> None:
    assert load_settings({}).malloc_trim_s == 60
    assert load_settings({"CALLCTL_MALLOC_TRIM_S": "0"}).malloc_trim_s == 0
    assert load_settings({"CALLCTL_MALLOC_TRIM_S": "300"}).malloc_trim_s == 300


@pytest.mark.parametrize("value", ["-1", "1.5", "x", "3601"])
def test_bad_trim_interval_names_the_variable_and_value(value: str) -> None:
    with pytest.raises(ConfigError, match=f"CALLCTL_MALLOC_TRIM_S.*{value}"):
        load_settings({"CALLCTL_MALLOC_TRIM_S": value})


def test_glibc_malloc_trim_is_found_and_callable() -> None:
    trim = memory.malloc_trim()
    assert trim is not None  # Debian: glibc
    assert trim(0) in (0, 1)


async def test_keep_trimmed_calls_trim_in_a_worker_thread_until_cancelled() -> None:
    calls: list[tuple[int, int]] = []  # (pad, thread id)
    loop = asyncio.get_running_loop()
    two = asyncio.Event()

    def fake_trim(pad: int) -> int:
        calls.append((pad, threading.get_ident()))
        if len(calls) == 2:
            loop.call_soon_threadsafe(two.set)
        return 1

    task = asyncio.create_task(memory.keep_trimmed(0.01, fake_trim))

    await asyncio.wait_for(two.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [pad for pad, _ in calls] == [0] * len(calls)
    assert threading.get_ident() not in {tid for _, tid in calls}  # never on the loop
