"""Hand freed heap memory back to the system now and then (glibc's ``malloc_trim``).

CPython frees objects into glibc's malloc, which keeps the freed memory of larger buffers
(event JSON, HTTP bodies, call records) in its heap instead of returning it. Under steady
call load that shows as resident memory creeping up for an hour or more while the Python
heap stays flat (measured with ``bench/soak``: 66 -> 96 MB over 30 minutes at 500 concurrent
calls without trimming; see README "Reliability"). ``malloc_trim(0)`` gives the free pages
back. It runs every ``CALLCTL_MALLOC_TRIM_S`` seconds (default 60, 0: never) in a worker
thread; on a libc without it (musl) nothing runs.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import time
from collections.abc import Callable

log = logging.getLogger("callctl.memory")


def malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim(pad)`` (1 if memory was released), or None without glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


async def keep_trimmed(interval_s: float, trim: Callable[[int], int]) -> None:
    """Call ``trim(0)`` every ``interval_s`` seconds, off the event loop, until cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        t0 = time.perf_counter()
        released = await asyncio.to_thread(trim, 0)
        log.debug("malloc_trim: %s in %.1f ms", "released memory" if released else "nothing",
                  (time.perf_counter() - t0) * 1000)
