"""The controller as the benchmarks run it: its own process, instrumented from inside.

    python -m bench.ctlproc        (environment: the bench stack's, see bench/env.py)

It is ``callctl run`` plus samplers that cost little: event-loop lag (a 10 ms sleeper's
lateness), resident memory (every 100 ms), CPU time, and a count of ARI REST requests by
method and path shape. SIGUSR1 resets the figures; SIGUSR2 writes them as JSON to
``$BENCH_STATS`` (atomically). :class:`CtlProc` starts and drives it from the bench.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import json
import logging
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from collections import Counter, deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from controller import jsonx, logs
from controller.adapters.ari.events import ChannelDestroyed, ChannelHangupRequest, StasisStart
from controller.config import load_settings
from controller.shell import memory
from controller.shell.runtime import Controller
from controller.tools import loops

_ID_AFTER = {"channels": 2, "bridges": 2, "playbacks": 2, "recordings": 3}
# Samples kept (newest): the figures of a long run (the soak) cover its last ~10 minutes, and
# the instrumentation never grows with the number of calls.
KEEP = 60_000
PAGE = os.sysconf("SC_PAGE_SIZE")


def shape(path: str) -> str:
    """``/channels/<id>/answer`` -> ``/channels/{id}/answer`` (ids out of the REST counts)."""
    parts = path.split("?", 1)[0].split("/")
    i = _ID_AFTER.get(parts[1]) if len(parts) > 1 else None
    if i is not None and len(parts) > i:
        parts[i] = "{id}"
    return "/".join(parts)


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


class Stats:
    def __init__(self, ctl: Controller) -> None:
        self.ctl = ctl
        self.reset()

    def reset(self) -> None:
        self.lag: deque[float] = deque(maxlen=KEEP)
        self.rss_max = rss_bytes()
        self.cpu0 = _cpu()
        self.sys0 = os.times().system
        self.t0 = time.monotonic()
        self.calls0 = self.ctl.calls_total
        self.events0 = self._events()
        self.rest: Counter[str] = Counter()
        self.to_originate: dict[str, deque[float]] = {"StasisStart": deque(maxlen=KEEP),
                                                      "leg end": deque(maxlen=KEEP)}
        self.originate_rtt: deque[float] = deque(maxlen=KEEP)
        self.store_failures = 0
        """Times the controller went into degraded mode (Redis failing): a figure taken
        meanwhile is not the normal path's."""

    def _events(self) -> int:
        return sum(n.stream.events_received for n in self.ctl.cluster.nodes.values())

    def dump(self) -> dict[str, Any]:
        lag = sorted(self.lag)

        def q(p: float) -> float:
            return lag[min(len(lag) - 1, int(p * len(lag)))] * 1000 if lag else 0.0

        return {
            "calls": self.ctl.calls_total - self.calls0,
            "live_calls": len(self.ctl.calls),
            "tasks": len(self.ctl._tasks) + len(self.ctl._call_tasks),
            "cpu_s": _cpu() - self.cpu0,
            "cpu_sys_s": os.times().system - self.sys0,
            "wall_s": time.monotonic() - self.t0,
            "rss_mb": rss_bytes() / 2**20,
            "rss_max_mb": self.rss_max / 2**20,
            "lag_ms": {"p50": q(0.5), "p99": q(0.99), "max": lag[-1] * 1000 if lag else 0.0,
                       "samples": len(lag)},
            "rest": dict(self.rest),
            "event_to_originate_ms": {
                k: {"p50": _q(v, 0.5) * 1000, "p99": _q(v, 0.99) * 1000, "n": len(v)}
                for k, v in self.to_originate.items()},
            "originate_rtt_ms": {"p50": _q(self.originate_rtt, 0.5) * 1000,
                                 "p99": _q(self.originate_rtt, 0.99) * 1000},
            "reconnects": self.ctl.stream.reconnects,
            "runtime": runtime(),
            "store_failures": self.store_failures + int(self.ctl.store_degraded),
            "ws_events": self._events() - self.events0,
        }


def runtime() -> dict[str, str]:
    """What this process actually runs on: event loop and JSON backend."""
    loop = type(asyncio.get_running_loop())
    return {"loop": f"{loop.__module__}.{loop.__name__}", "json": jsonx.BACKEND}


def _q(values: Iterable[float], p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(p * len(v)))] if v else 0.0


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


async def main() -> None:
    settings = load_settings()
    logs.setup("json", level=getattr(logging, os.environ.get("BENCH_LOG_LEVEL", "INFO")))
    ctl = Controller(settings)
    stats = Stats(ctl)
    out = Path(os.environ.get("BENCH_STATS", "ctlstats.json"))

    request = ctl.ari.request
    loop = asyncio.get_running_loop()
    # call id -> (event, loop time it was read): an inbound StasisStart or a leg's end; the
    # time until the call's next originate is the controller's own share of a setup / hop.
    seen: dict[str, tuple[str, float]] = {}

    async def counted(method: str, path: str, **kw: Any) -> Any:
        stats.rest[f"{method} {shape(path)}"] += 1
        if method == "POST" and path == "/channels":
            call = str((kw.get("params") or {}).get("appArgs", "")).partition(",")[2]
            mark = seen.pop(call, None)
            t0 = loop.time()
            if mark is not None:
                stats.to_originate[mark[0]].append(t0 - mark[1])
            try:
                return await request(method, path, **kw)
            finally:
                stats.originate_rtt.append(loop.time() - t0)
        return await request(method, path, **kw)

    ctl.ari.request = counted  # type: ignore[method-assign]
    on_event = ctl.stream.on_event

    def timed(ev: Any) -> None:
        if isinstance(ev, StasisStart) and ev.args[:1] == ("inbound",):
            seen[ev.channel.id] = ("StasisStart", loop.time())
        elif isinstance(ev, (ChannelHangupRequest, ChannelDestroyed)) and "-L" in ev.channel.id:
            seen.setdefault(ev.channel.id.rpartition("-L")[0], ("leg end", loop.time()))
        if len(seen) > 10000:
            seen.clear()
        on_event(ev)

    ctl.stream.on_event = timed
    store_failed = ctl.store_failed

    def counted_failure() -> None:
        if not ctl.store_degraded:
            stats.store_failures += 1
        store_failed()

    ctl.store_failed = counted_failure  # type: ignore[method-assign]


    # BENCH_CPROFILE=<file>: a deterministic profile from each reset to the next figures
    # (pstats format; slows the controller ~2x, so the figures of that run are not kept).
    prof_path = os.environ.get("BENCH_CPROFILE")
    prof = cProfile.Profile() if prof_path else None
    # BENCH_TRACEMALLOC=<file>: with each figures write, the allocation sites that grew most
    # since the first reset (memory that calls leave behind), into <file>.
    mem_path = os.environ.get("BENCH_TRACEMALLOC")
    mem_base: list[tracemalloc.Snapshot] = []
    if mem_path:
        tracemalloc.start(8)

    def reset() -> None:
        stats.reset()
        if prof is not None:
            prof.enable()
        if tracemalloc.is_tracing() and not mem_base:
            mem_base.append(tracemalloc.take_snapshot())

    # BENCH_MALLOC_TRIM=1: give glibc's free heap memory back before each figures write too
    # (beside the controller's own CALLCTL_MALLOC_TRIM_S; 0 there shows the untrimmed RSS), to
    # tell memory that is merely retained by the allocator from memory that is still in use.
    trim = memory.malloc_trim() if os.environ.get("BENCH_MALLOC_TRIM") else None

    def write() -> None:
        if trim is not None:
            trim(0)
        if prof is not None and prof_path:
            prof.disable()
            prof.dump_stats(prof_path)
        if mem_base and mem_path:
            snap = tracemalloc.take_snapshot()
            diff = snap.compare_to(mem_base[0], "traceback")
            by_file = snap.compare_to(mem_base[0], "filename")
            with open(mem_path, "w") as fh:
                fh.write(f"total {sum(d.size_diff for d in diff) / 1024:+.0f} KiB; "
                         f"traced now {tracemalloc.get_traced_memory()[0] / 2**20:.1f} MiB\n")
                for d in by_file[:15]:
                    fh.write(f"  {d.size_diff / 1024:+.0f} KiB {d.count_diff:+d} "
                             f"{d.traceback[0].filename}\n")
                for d in diff[:12]:
                    fh.write(f"{d.size_diff / 1024:+.0f} KiB {d.count_diff:+d} blocks\n")
                    fh.writelines(f"    {line}\n" for line in d.traceback.format()[-8:])
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(stats.dump()))
        os.replace(tmp, out)

    loop.add_signal_handler(signal.SIGUSR1, reset)
    loop.add_signal_handler(signal.SIGUSR2, write)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    async def lag() -> None:
        while True:
            t = loop.time()
            await asyncio.sleep(0.01)
            stats.lag.append(max(0.0, loop.time() - t - 0.01))

    async def rss() -> None:
        while True:
            await asyncio.sleep(0.1)
            stats.rss_max = max(stats.rss_max, rss_bytes())

    await ctl.start()
    await asyncio.wait_for(ctl.stream.connected_event.wait(), 30)
    (out.parent / (out.name + ".ready")).write_text(str(os.getpid()))
    samplers = [asyncio.create_task(lag()), asyncio.create_task(rss())]
    try:
        await stop.wait()
    finally:
        for t in samplers:
            t.cancel()
        await ctl.close()


class CtlProc:
    """Start/stop the instrumented controller and read its figures (from the bench)."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = {**os.environ, **env}
        self.workdir = workdir
        self.stats_path = workdir / "ctlstats.json"
        self.env["BENCH_STATS"] = str(self.stats_path)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> None:
        self.proc = spawn("bench.ctlproc", self.env, self.workdir / "controller.log",
                          self.workdir / (self.stats_path.name + ".ready"), timeout)

    def reset(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGUSR1)
        time.sleep(0.05)

    def stats(self) -> dict[str, Any]:
        assert self.proc is not None
        self.stats_path.unlink(missing_ok=True)
        self.proc.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 10
        while not self.stats_path.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("controller did not write its figures")
            time.sleep(0.02)
        return json.loads(self.stats_path.read_text())  # type: ignore[no-any-return]

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None


def spawn(module: str, env: dict[str, str], log: Path, ready: Path,
          timeout: float) -> subprocess.Popen[bytes]:
    """``python -m module`` with its output in ``log``; returns once it wrote ``ready``."""
    ready.unlink(missing_ok=True)
    with open(log, "ab") as fh:
        proc = subprocess.Popen([sys.executable, "-m", module], env=env, stdout=fh,
                                stderr=fh, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"{module} exited at start; see {log}")
        if time.monotonic() > deadline:
            terminate(proc)
            raise RuntimeError(f"{module} not ready in {timeout:.0f} s; see {log}")
        time.sleep(0.05)
    return proc


def terminate(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL after 15 s."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        loops.run(main())  # as `callctl run`: uvloop unless CALLCTL_LOOP=asyncio
