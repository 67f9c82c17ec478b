"""Soak (not in CI): hold N concurrent calls through one controller for M minutes, printing
memory and leak counts every minute.

    .venv/bin/python -m bench.soak                       # 500 calls, 30 minutes
    .venv/bin/python -m bench.soak --calls 50 --minutes 2 --every 20

Runs on the bench stack (bench/env.py; not at the same time as ``python -m bench``). SIPp
keeps ``--calls`` calls up (each answered by an agent, held ``--hold`` seconds, then hung up
and replaced). Each line: controller RSS now / peak, CPU seconds, calls finished, calls live
in the controller, and the leak counters, which must stay near the live count while running
and reach 0 at the end: Asterisk channels/2 and bridges, Redis call states, busy marks and
leases, controller tasks. Exit status 1 if anything is left at the end or a call failed.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bench import env, flows
from bench.ctlproc import CtlProc
from bench.run import SCALES, Bench
from bench.sipp import SIPP, Agent, free_udp_port, uac_load_scenario
from controller.adapters.ari.client import AriClient


async def leaks(ari: AriClient, r: aioredis.Redis) -> dict[str, int]:
    chans = await ari.list_channels() or []
    bridges = await ari.list_bridges() or []
    out = {"channels": len(chans), "bridges": len(bridges)}
    for name, pattern in (("call_states", "call:*"), ("busy_marks", "busy:*"),
                          ("call_leases", "lease:call:*")):
        out[name] = sum([1 async for _ in r.scan_iter(match=f"{env.PREFIX}{pattern}",
                                                      count=1000)])
    return out


def sipp_counts(stat: Path) -> tuple[int, int]:
    try:
        rows = list(csv.reader(stat.read_text().splitlines(), delimiter=";"))
    except FileNotFoundError:
        return 0, 0
    if len(rows) < 2:
        return 0, 0
    head, last = rows[0], rows[-1]
    return (int(last[head.index("SuccessfulCall(C)")]), int(last[head.index("FailedCall(C)")]))


async def soak(calls: int, minutes: float, hold_s: float, every: float) -> int:
    work = Path(tempfile.mkdtemp(prefix="callctl-soak-"))
    scale = SCALES["small"]
    scale.k_call, scale.k_failover = int(calls * 1.3) + 20, 0
    b = Bench(scale, work)
    b.agents = {}
    print(f"soak: {calls} concurrent calls for {minutes:g} min (hold {hold_s:g} s), "
          f"report every {every:g} s")
    b.settings = await asyncio.to_thread(env.up)
    await asyncio.to_thread(env.reset, b.settings)
    await b.publish()
    agent = Agent("agent3", env.PHONE_PORTS["agent3"], "answer").start()
    await asyncio.to_thread(env.wait_contacts, b.settings, ["agent3"])
    ctl = CtlProc(env.ENV, work)
    await asyncio.to_thread(ctl.start)
    s = b.settings
    ari = AriClient(s.ari_url, s.ari_user, s.ari_password, s.app)
    r = aioredis.from_url(s.redis_url, decode_responses=True)
    scen = work / "uac.xml"
    scen.write_text(uac_load_scenario(int(hold_s * 1000), answer_ms=10_000))
    inf = work / "dids.csv"
    inf.write_text("SEQUENTIAL\n" + "".join(f"{flows.did(flows.CTL_CALL, i)};\n"
                                            for i in range(scale.k_call)))
    stat = work / "stat.csv"
    rate = max(1.0, calls / hold_s * 1.5)
    argv = [SIPP, f"127.0.0.1:{env.SIP_PORT}", "-sf", str(scen), "-inf", str(inf),
            "-i", "127.0.0.1", "-p", str(free_udp_port()), "-r", f"{rate:.0f}", "-l", str(calls),
            "-nostdin", "-nd", "-aa", "-trace_stat", "-stf", str(stat), "-fd", "5",
            "-default_behaviors", "-abortunexp,-bye"]
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=work, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
    ctl.reset()
    t0 = time.monotonic()
    rc = 0
    header = (f"{'min':>5} {'rss MB':>7} {'peak':>7} {'cpu s':>7} {'done':>7} {'live':>5} "
              f"{'failed':>6} {'chan/2':>6} {'bridges':>7} {'states':>6} {'busy':>5} "
              f"{'leases':>6} {'tasks':>6} {'lag p99':>7}")
    print(header)

    async def line() -> dict[str, Any]:
        st = await asyncio.to_thread(ctl.stats)
        lk = await leaks(ari, r)
        ok, failed = sipp_counts(stat)
        print(f"{(time.monotonic() - t0) / 60:5.1f} {st['rss_mb']:7.1f} {st['rss_max_mb']:7.1f} "
              f"{st['cpu_s']:7.1f} {st['calls'] - st['live_calls']:7d} {st['live_calls']:5d} "
              f"{failed:6d} {lk['channels'] / 2:6.0f} {lk['bridges']:7d} "
              f"{lk['call_states']:6d} {lk['busy_marks']:5d} {lk['call_leases']:6d} "
              f"{st['tasks']:6d} {st['lag_ms']['p99']:7.1f}", flush=True)
        return {"stats": st, "leaks": lk, "sipp_ok": ok, "sipp_failed": failed}

    try:
        deadline = t0 + minutes * 60
        while time.monotonic() < deadline:
            await asyncio.sleep(min(every, max(0.0, deadline - time.monotonic())))
            await line()
        os.killpg(proc.pid, signal.SIGUSR1)  # SIPp: no new calls, let the current ones end
        try:
            await asyncio.wait_for(proc.wait(), hold_s + 60)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(env.wait_idle, s, 60)
        await asyncio.sleep(2)
        print("end:")
        last = await line()
        left = {k: v for k, v in last["leaks"].items() if v}
        if left or last["stats"]["live_calls"] or last["sipp_failed"]:
            print(f"soak: FAILED: left {left}, live calls {last['stats']['live_calls']}, "
                  f"failed calls {last['sipp_failed']}")
            rc = 1
        else:
            print(f"soak: ok: {last['sipp_ok']} calls, nothing left behind")
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
        await ari.close()
        await r.aclose()
        await asyncio.to_thread(ctl.stop)
        agent.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    return rc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, default=500, help="concurrent calls (default 500)")
    p.add_argument("--minutes", type=float, default=30, help="how long (default 30)")
    p.add_argument("--hold", type=float, default=60, help="seconds each call lasts (60)")
    p.add_argument("--every", type=float, default=60, help="report every N seconds (60)")
    a = p.parse_args(argv)
    return asyncio.run(soak(a.calls, a.minutes, a.hold, a.every))


if __name__ == "__main__":
    sys.exit(main())
