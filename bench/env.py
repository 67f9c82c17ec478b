"""The benchmark stack: Asterisk + Redis of their own (slot ``CALLCTL_BENCH_SLOT``, default 7).

The same port layout as the test slots (``tests/integration/conftest.py``), so a bench never
shares a stack with a test run, except for the RTP range: 1000 concurrent calls need ~4000
RTP/RTCP ports, so the bench uses 61000-65534 (above the kernel's ephemeral range).

The dialplan's ``callctl-bench-native`` context (the baseline) is off unless AstDB
``callctl_bench/native`` is 1; :func:`up` sets it on this stack only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

from controller.adapters.ari.client import AriClient
from controller.adapters.ari.errors import AriError
from controller.config import PROJECT_ROOT, Settings, load_settings
from controller.tools import stack

SLOT = int(os.environ.get("CALLCTL_BENCH_SLOT", "7"))
PREFIX = "bench:"
SIP_PORT = 5160 + 10 * SLOT
PHONE_BASE = 6070 + 100 * SLOT


def bench_env(slot: int = SLOT) -> dict[str, str]:
    base = 6070 + 100 * slot
    return {
        "CALLCTL_RUN_DIR": str(PROJECT_ROOT / "run" / f"bench{slot}"),
        "CALLCTL_APP": f"callctl-bench{slot}",
        "CALLCTL_SIP_PORT": str(5160 + 10 * slot),
        "CALLCTL_ARI_URL": f"http://127.0.0.1:{8188 + 10 * slot}",
        "CALLCTL_AMI_PORT": str(5138 + 10 * slot),
        "REDIS_URL": f"redis://127.0.0.1:{6479 + 10 * slot}/0",
        "CALLCTL_RTP_START": "61000",
        "CALLCTL_RTP_END": "65534",
        "CALLCTL_AGENT_PORT_BASE": str(base),
        "CALLCTL_PSTN_PORT": str(base + 20),
        "CALLCTL_REDIS_PREFIX": PREFIX,
        "CALLCTL_LOG_FORMAT": "json",
        "CALLCTL_ADMIN": "off",  # no admin port to collide with (two controllers at times)
    }


ENV = bench_env()
PHONE_PORTS = {f"agent{n}": PHONE_BASE + n for n in range(1, 9)} | {"pstn": PHONE_BASE + 20}


def settings() -> Settings:
    return load_settings({**os.environ, **ENV}, generate=True)


def up() -> Settings:
    s = settings()
    for line in stack.up(s):
        print(f"  {line}")
    stack.asterisk_cli(s, "database put callctl_bench native 1")
    return s


def reset(s: Settings) -> None:
    """Hang up every channel and empty the bench Redis (both are the bench's own)."""
    stack.asterisk_cli(s, "channel request hangup all")
    wait_idle(s, 10)
    asyncio.run(_destroy_bridges(s))
    import redis

    r = redis.Redis.from_url(s.redis_url)
    try:
        r.flushdb()
    finally:
        r.close()


async def _destroy_bridges(s: Settings) -> None:
    ari = AriClient(s.ari_url, s.ari_user, s.ari_password, s.app)
    try:
        for b in await ari.list_bridges() or []:
            with contextlib.suppress(AriError):
                await ari.destroy_bridge(b["id"])
    finally:
        await ari.close()


def down() -> None:
    for line in stack.down(settings()):
        print(f"  {line}")


def channel_count(s: Settings) -> int:
    out = stack.asterisk_cli(s, "core show channels count")
    for line in out.splitlines():
        if "active channel" in line:
            return int(line.split()[0])
    return -1


def wait_idle(s: Settings, timeout: float = 60.0, grace: float = 15.0) -> bool:
    """Until Asterisk has no channel (the previous run's calls all ended). Channels still
    there after ``grace`` s (an over-capacity step's stragglers, ringing out their timers)
    are hung up, so the next step starts from nothing without waiting for them."""
    t0 = time.monotonic()
    forced = False
    while time.monotonic() - t0 < timeout:
        if channel_count(s) == 0:
            return True
        if not forced and time.monotonic() - t0 > grace:
            stack.asterisk_cli(s, "channel request hangup all")
            forced = True
        time.sleep(0.2)
    return False


def stack_cpu(s: Settings) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the bench stack's Asterisk and Redis."""
    pids = stack.Paths(s.run_dir).pids
    out: dict[str, float] = {}
    for name in ("asterisk", "redis"):
        with contextlib.suppress(OSError, ValueError):
            pid = int((pids / f"{name}.pid").read_text().strip())
            out[name] = proc_cpu(pid)
    return out


def proc_cpu(pid: int) -> float:
    """utime + stime of a process, in seconds (/proc/<pid>/stat)."""
    return sum(proc_times(pid))


def proc_times(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process, in seconds (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tck, int(fields[12]) / tck


def wait_contacts(s: Settings, names: list[str], want: str = "Avail",
                  timeout: float = 15.0) -> None:
    # A qualify sent while a phone was being (re)started times out 2 s later (qualify_timeout)
    # and marks it Unavail after we saw it Avail: let those land first.
    time.sleep(2.2)
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            stack.asterisk_cli(s, f"pjsip qualify {name}")
            out = stack.asterisk_cli(s, f"pjsip show contacts like {name}")
            if any(want in ln.split() for ln in out.splitlines() if "Contact:" in ln):
                pending.discard(name)
        if pending:
            time.sleep(0.2)
    if pending:
        raise RuntimeError(f"contacts not {want}: {sorted(pending)}")


def results_dir() -> Path:
    d = PROJECT_ROOT / "run" / f"bench{SLOT}" / "results"
    d.mkdir(parents=True, exist_ok=True)
    return d
