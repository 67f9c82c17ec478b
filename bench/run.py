"""The benchmarks: controller vs plain dialplan on one stack, in one invocation.

    .venv/bin/python -m bench [--scale small|full] [--only capacity,latency,...] [--json F]
                              [--configs library,stdlib,...] [--rounds N]

Figures (see README, "Performance"): cost (CPU per call of each process), floor (the bare
ARI exchange, bench/floorapp.py, three ways), configs (the controller in each runtime
configuration: event loop, JSON), setup latency, failover hop, event loop, scale, capacity
(per configuration too, with configs).
Each SIPp figure runs the same calls through the controller (DID -> department -> agent) and
through plain dialplan ``Dial()`` to the same SIPp agent, and reports both and their ratio, so
machine noise largely cancels. Prints a table and writes JSON
(default ``run/bench7/results/bench-<time>.json``). Never used as a test assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bench import env, flows
from bench.ctlproc import CtlProc
from bench.fakeari import FakeAri
from bench.floorapp import FloorProc
from bench.sipp import Agent, LoadResult, first_invites, first_responses, load
from controller.adapters.redis import flowstore as publish
from controller.config import Settings
from controller.core.flows import loader


@dataclass
class Scale:
    name: str
    cap_seconds: float  # calls per capacity step = rate x this
    cap_start: float
    cap_max: float
    lat_calls: int
    fo_calls: int
    fo_rate: float
    ev_seconds: float
    concurrent: int
    k_call: int
    k_failover: int

    @property
    def cost_rate(self) -> float:
        """Calls/s for the cost and floor figures: a rate both ways sustain."""
        return 50.0 if self.name == "small" else 100.0

    @property
    def cost_seconds(self) -> int:
        return 5 if self.name == "small" else 10


SCALES = {
    # small: safe beside other work on a 2-core machine (capacity stops at 160 calls/s)
    "small": Scale("small", 3, 20, 160, 150, 60, 10, 4, 200, 700, 200),
    "full": Scale("full", 13, 100, 600, 500, 300, 20, 10, 1000, 1300, 400),
}


# The runtime configurations the ``configs`` figure compares in one invocation (issue 15):
# event loop and JSON backend, on the library transports (aiohttp, redis-py). "library" is the
# product's default; "stdlib" its fallback where uvloop and orjson are not installed. (The
# own-transport configurations, "own", "today", "own-ari", "own-redis", went with
# controller/adapters/ari/http.py and controller/adapters/redis/mux.py: README "Performance".)
CONFIGS: dict[str, dict[str, str]] = {
    "library": {"CALLCTL_LOOP": "uvloop", "CALLCTL_JSON": "orjson"},
    "asyncio": {"CALLCTL_LOOP": "asyncio", "CALLCTL_JSON": "orjson"},
    "json": {"CALLCTL_LOOP": "uvloop", "CALLCTL_JSON": "json"},
    "stdlib": {"CALLCTL_LOOP": "asyncio", "CALLCTL_JSON": "json"},
}
CAPACITY_CONFIGS = ("library", "stdlib")


@dataclass
class Figure:
    figure: str
    unit: str
    controller: float | None
    baseline: float | None
    target: str
    ok: bool | None

    @property
    def ratio(self) -> float | None:
        if self.controller is None or not self.baseline:
            return None
        return self.controller / self.baseline


def pct(values: list[float], p: float) -> float:
    v = sorted(values)
    if not v:
        return float("nan")
    return v[min(len(v) - 1, int(p * len(v)))]


class Bench:
    def __init__(self, scale: Scale, workdir: Path, configs: list[str] | None = None,
                 rounds: int = 2) -> None:
        self.scale = scale
        self.configs = configs if configs is not None else list(CONFIGS)
        self.cap_configs = [c for c in CAPACITY_CONFIGS if c in self.configs]
        self.rounds = rounds
        self.workdir = workdir
        self.settings: Settings | None = None
        self.agents: dict[str, Agent] = {}
        self.ctl = CtlProc(env.ENV, workdir)
        self.figures: list[Figure] = []
        self.details: dict[str, Any] = {}

    # ------------------------------------------------------------------ setup

    def log(self, msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    async def setup(self) -> None:
        self.log(f"bench stack: slot {env.SLOT}")
        self.settings = await asyncio.to_thread(env.up)
        # The bench stack is the bench's own: start from nothing (a previous run may have
        # been interrupted).
        await asyncio.to_thread(env.reset, self.settings)
        await self.publish()
        self.agents = {
            "agent1": Agent("agent1", env.PHONE_PORTS["agent1"], "busy").start(),
            "agent2": Agent("agent2", env.PHONE_PORTS["agent2"], "answer").start(),
            "agent3": Agent("agent3", env.PHONE_PORTS["agent3"], "answer").start(),
        }
        await asyncio.to_thread(env.wait_contacts, self.settings, list(self.agents))
        self.log("starting the controller")
        await asyncio.to_thread(self.ctl.start)
        for prefix in (flows.CTL_CALL, flows.NATIVE_CALL):  # warm-up: both paths work
            res = await self.calls(prefix, 20, rate=10, calls=20, hold_ms=200)
            shutil.rmtree(res.workdir, ignore_errors=True)
            if not res.complete:
                raise RuntimeError(f"warm-up calls to {prefix}...: {res.ok}/20 completed")

    async def publish(self, prefix: str = env.PREFIX) -> None:
        d = self.workdir / "flows"
        d.mkdir(exist_ok=True)
        (d / "bench.yaml").write_text(flows.bench_yaml(self.scale.k_call, self.scale.k_failover))
        res = loader.load([d])
        if res.errors:
            raise RuntimeError("\n".join(map(str, res.errors[:5])))
        r = aioredis.from_url(env.settings().redis_url, decode_responses=True)  # + password
        try:
            v = await publish.publish(r, res, prefix=prefix)
        finally:
            await r.aclose()
        self.log(f"published bench flows version {v} ({self.scale.k_call}+"
                 f"{self.scale.k_failover} DIDs)")

    async def teardown(self) -> None:
        await asyncio.to_thread(self.ctl.stop)
        for a in self.agents.values():
            a.cleanup()

    async def idle(self) -> None:
        assert self.settings is not None
        if not await asyncio.to_thread(env.wait_idle, self.settings, 90):
            self.log("warning: Asterisk still has channels after 90 s")

    def dids(self, prefix: str, n: int) -> list[str]:
        return [flows.did(prefix, i) for i in range(n)]

    async def calls(self, prefix: str, k: int, **kw: Any) -> LoadResult:
        res = await load(env.SIP_PORT, self.dids(prefix, k), **kw)
        await self.idle()
        return res

    # ------------------------------------------------------------------ capacity

    async def capacity(self) -> None:
        """The highest rate at which every call completes, through the controller and through
        the dialplan. With the ``configs`` figure too: the controller side once per runtime
        configuration of ``CAPACITY_CONFIGS`` (the controller restarted with its settings)."""
        out: dict[str, Any] = {"baseline": await self._capacity_search("baseline",
                                                                      flows.NATIVE_CALL)}
        if "configs" in self.details and self.cap_configs:
            for name in self.cap_configs:
                async with self.config(name):
                    out[name] = await self._capacity_search(name, flows.CTL_CALL)
            out["controller"] = out[self.cap_configs[0]]
        else:
            out["controller"] = await self._capacity_search("controller", flows.CTL_CALL)
        self.details["capacity"] = out
        c, b = out["controller"]["rate"], out["baseline"]["rate"]
        ok = b > 0 and c / b >= 0.70
        self.figures.append(Figure("capacity (100% completed)", "calls/s", c, b,
                                   ">= 0.70 x baseline", ok))
        for name in self.cap_configs if "configs" in self.details else ():
            if name == self.cap_configs[0]:
                continue
            self.figures.append(Figure(f"same, {name}", "calls/s", out[name]["rate"], b,
                                       "-", None))

    async def _capacity_search(self, side: str, prefix: str) -> dict[str, Any]:
        sc = self.scale
        lo, hi, rate, steps = 0.0, None, sc.cap_start, []
        while True:
            n = int(rate * sc.cap_seconds)
            # a call not done 30 s after the last one started failed anyway (answer
            # within 5 s, 1 s of talk): SIPp's default 120 s made each failing step 2 min
            res = await self.calls(prefix, sc.k_call, rate=rate, calls=n, hold_ms=1000,
                                   timeout=sc.cap_seconds + 30)
            steps.append({"rate": rate, "calls": n, "ok": res.ok, "failed": res.failed})
            self.log(f"capacity {side}: {rate:.0f}/s -> {res.ok}/{n} completed")
            shutil.rmtree(res.workdir, ignore_errors=True)
            if res.complete:
                lo = rate
            else:
                hi = rate
            if hi is None:
                if rate >= sc.cap_max:
                    break
                rate = min(rate * 2, sc.cap_max)
            else:
                if hi - lo <= max(5.0, 0.05 * hi):
                    break
                rate = round((lo + hi) / 2)
        return {"rate": lo, "capped": hi is None, "steps": steps}

    # ------------------------------------------------------------------ configurations

    @contextlib.asynccontextmanager
    async def config(self, name: str) -> AsyncIterator[None]:
        """The controller restarted with configuration ``name`` (CONFIGS) for the block."""
        await asyncio.to_thread(self.ctl.stop)
        main = self.ctl
        self.ctl = CtlProc({**env.ENV, **CONFIGS[name]}, self.workdir)
        try:
            await asyncio.to_thread(self.ctl.start)
            # warm-up: the pools' connections opened before anything is measured
            res = await self.calls(flows.CTL_CALL, 20, rate=20, calls=20, hold_ms=200)
            shutil.rmtree(res.workdir, ignore_errors=True)
            yield
        finally:
            await asyncio.to_thread(self.ctl.stop)
            self.ctl = main
            await asyncio.to_thread(self.ctl.start)

    async def _cost_side(self, prefix: str, controller: bool) -> dict[str, Any]:
        """CPU ms per call of each process for ``calls`` at the cost rate (``controller``: the
        controller process's too, net of its idle burn, measured just before)."""
        assert self.settings is not None
        sc = self.scale
        rate, n = sc.cost_rate, int(sc.cost_rate * sc.cost_seconds)
        idle_rate = 0.0
        if controller:
            self.ctl.reset()
            await asyncio.sleep(3)
            idle = self.ctl.stats()
            idle_rate = idle["cpu_s"] / idle["wall_s"]
        before = env.stack_cpu(self.settings)
        self.ctl.reset()
        res = await load(env.SIP_PORT, self.dids(prefix, sc.k_call), rate=rate, calls=n,
                         hold_ms=1000)
        await asyncio.to_thread(env.wait_idle, self.settings, 90)
        st = self.ctl.stats()
        after = env.stack_cpu(self.settings)
        shutil.rmtree(res.workdir, ignore_errors=True)
        ok = max(1, res.ok)
        per = {k: (after[k] - before.get(k, 0.0)) / ok * 1000 for k in after}
        extra: dict[str, Any] = {}
        if controller:
            per["controller"] = (st["cpu_s"] - idle_rate * st["wall_s"]) / ok * 1000
            extra["controller_idle_ms_per_s"] = idle_rate * 1000
            extra["controller_kernel_ms_per_call"] = st["cpu_sys_s"] / ok * 1000
            extra["ws_events_per_call"] = st["ws_events"] / ok
            extra["rest_per_call"] = sum(st["rest"].values()) / ok
            extra["runtime"] = st.get("runtime", {})
            extra["store_failures"] = st.get("store_failures", 0)
            if extra["store_failures"]:
                self.log(f"warning: the controller ran degraded (Redis failing) "
                         f"{extra['store_failures']} time(s) during this figure")
        per["total"] = sum(per.values())
        return {"rate": rate, "calls": n, "ok": res.ok, "cpu_ms_per_call": per, **extra}

    async def configs_figure(self) -> None:
        """Controller CPU per call and the capacity ratio the CPU allows, for each runtime
        configuration (CONFIGS), in ``rounds`` rounds (the configurations interleaved, so a
        change of the machine's load spreads over all of them), the dialplan's cost measured
        before, between and after the rounds. Figures: the mean over the rounds."""
        runs: dict[str, list[dict[str, Any]]] = {c: [] for c in self.configs}
        base: list[dict[str, Any]] = []
        for r in range(self.rounds):
            base.append(await self._cost_side(flows.NATIVE_CALL, controller=False))
            for name in self.configs:
                async with self.config(name):
                    got = await self._cost_side(flows.CTL_CALL, controller=True)
                runs[name].append(got)
                per = got["cpu_ms_per_call"]
                self.log(f"configs round {r + 1}: {name}: {got['ok']}/{got['calls']} calls; "
                         f"CPU ms/call controller {per['controller']:.2f} (kernel "
                         f"{got['controller_kernel_ms_per_call']:.2f}), asterisk "
                         f"{per['asterisk']:.2f}, redis {per.get('redis', 0):.2f}; "
                         f"{got['runtime']}")
        base.append(await self._cost_side(flows.NATIVE_CALL, controller=False))
        b_total = _mean(x["cpu_ms_per_call"]["total"] for x in base)
        out: dict[str, Any] = {"baseline": base, "baseline_total_ms": b_total, "configs": {}}
        for name, rs in runs.items():
            ctl = [x["cpu_ms_per_call"]["controller"] for x in rs]
            out["configs"][name] = {
                "env": CONFIGS[name], "runs": rs,
                "controller_ms": _mean(ctl), "controller_ms_min": min(ctl),
                "controller_ms_max": max(ctl),
                "kernel_ms": _mean(x["controller_kernel_ms_per_call"] for x in rs),
                "asterisk_ms": _mean(x["cpu_ms_per_call"]["asterisk"] for x in rs),
                "redis_ms": _mean(x["cpu_ms_per_call"].get("redis", 0.0) for x in rs),
                "total_ms": _mean(x["cpu_ms_per_call"]["total"] for x in rs),
            }
            out["configs"][name]["cpu_capacity_ratio"] = b_total / \
                out["configs"][name]["total_ms"]
        self.details["configs"] = out
        first = self.configs[0]
        for name in self.configs:
            c = out["configs"][name]
            self.figures.append(Figure(f"{name}: controller CPU per call", "ms",
                                       c["controller_ms"], None, "<= 1 ms",
                                       c["controller_ms"] <= 1))
            self.figures.append(Figure(f"{name}: capacity ratio the CPU allows", "x",
                                       c["cpu_capacity_ratio"], None, ">= 0.70",
                                       c["cpu_capacity_ratio"] >= 0.70))
        print()
        print(configs_table(out, first))
        print()

    # ------------------------------------------------------------------ cost

    async def cost(self) -> None:
        """CPU per call of each process of the stack, both ways, at a rate both sustain.

        On a CPU-bound machine capacity is set by the whole stack's CPU per call (the SIPp
        load generator's aside, the same both ways), so baseline/controller of that total is
        the capacity ratio to expect, and Asterisk's own share shows what a controller costing
        nothing would still leave."""
        out: dict[str, Any] = {}
        for side, prefix in (("controller", flows.CTL_CALL), ("baseline", flows.NATIVE_CALL)):
            # controller: net of what its process burns with no call (its timers and the
            # bench's own samplers: a 10 ms lag sleeper, RSS every 100 ms)
            out[side] = got = await self._cost_side(prefix, controller=side == "controller")
            extra = {k: v for k, v in got.items() if k.startswith(("controller_", "ws_", "rest_"))}
            self.log(f"cost {side}: {got['ok']}/{got['calls']} calls; CPU ms/call " +
                     ", ".join(f"{k} {v:.2f}" for k, v in
                               {**got["cpu_ms_per_call"], **extra}.items()))
        self.details["cost"] = out
        c, b = out["controller"]["cpu_ms_per_call"], out["baseline"]["cpu_ms_per_call"]
        self.figures.append(Figure("CPU per call: Asterisk", "ms", c["asterisk"],
                                   b["asterisk"], "-", None))
        self.figures.append(Figure("CPU per call: controller (net of idle)", "ms",
                                   c.get("controller"),
                                   None, "<= 1 ms", c.get("controller", 99) <= 1))
        self.figures.append(Figure("CPU per call: Redis", "ms", c.get("redis"), b.get("redis"),
                                   "-", None))
        self.figures.append(Figure("CPU per call: stack total", "ms", c["total"], b["total"],
                                   "-", None))
        # the capacity ratio the CPU allows: baseline total / controller total
        self.figures.append(Figure("capacity ratio the CPU allows (total/total)", "x",
                                   b["total"] / c["total"], None, ">= 0.70",
                                   b["total"] / c["total"] >= 0.70))
        self.figures.append(Figure("same with a free controller (Asterisk+Redis only)", "x",
                                   b["total"] / (c["total"] - c.get("controller", 0.0)), None,
                                   "-", None))

    # ------------------------------------------------------------------ floor

    async def floor(self) -> None:
        """CPU per call of the protocol alone: ``bench/floorapp.py`` makes the controller's
        ARI requests for the same calls over the same transports, with no logic and no Redis.

        Three exchanges (FLOOR_MODE): ``ctl`` the controller's own (7 requests a call),
        ``pool`` the same with bridges reused from a pool, ``lean`` the leanest ARI allows (the
        pool and no ringback: 4 requests). The controller is stopped meanwhile (the floor app
        takes its Stasis app name) and started again afterwards. Runtime: each of the
        configurations ``library`` and ``stdlib`` given in ``--configs`` (else the first).
        Beside ``cost``, it splits the controller's CPU per call into what the ARI exchange
        itself costs in Python and what the controller adds."""
        cfgs = [c for c in ("library", "stdlib") if c in self.configs] or self.configs[:1]
        await asyncio.to_thread(self.ctl.stop)
        out: dict[str, Any] = {}
        try:
            for cfg in cfgs:
                out[cfg] = await self._floor(cfg)
        finally:
            await asyncio.to_thread(self.ctl.start)
        self.details["floor"] = out
        what = {"ctl": "the controller's exchange", "pool": "same, bridges from a pool",
                "lean": "leanest (pool, no ringback)"}
        for cfg in cfgs:
            for mode in ("ctl", "pool", "lean"):
                per = out[cfg][mode]["cpu_ms_per_call"]
                self.figures.append(Figure(f"floor app ({cfg}), {what[mode]}: app CPU", "ms",
                                           per["app"], None, "-", None))
                self.figures.append(Figure(f"same: Asterisk, driven by it ({what[mode]})",
                                           "ms", per["asterisk"], None, "-", None))

    async def _floor(self, cfg: str) -> dict[str, Any]:
        assert self.settings is not None
        sc = self.scale
        rate, n = sc.cost_rate, int(sc.cost_rate * sc.cost_seconds)
        out: dict[str, Any] = {}
        for mode in ("ctl", "pool", "lean"):
            proc = FloorProc({**self.ctl.env, **CONFIGS[cfg]}, self.workdir, mode)
            try:
                await asyncio.to_thread(proc.start)
                # warm-up, then what the idle app burns
                res = await self.calls(flows.CTL_CALL, 20, rate=20, calls=20, hold_ms=200)
                shutil.rmtree(res.workdir, ignore_errors=True)
                c0, t0 = env.proc_cpu(proc.pid), time.monotonic()
                await asyncio.sleep(3)
                idle_rate = (env.proc_cpu(proc.pid) - c0) / (time.monotonic() - t0)
                before = env.stack_cpu(self.settings)
                c0, t0 = env.proc_cpu(proc.pid), time.monotonic()
                sys0 = env.proc_times(proc.pid)[1]
                res = await load(env.SIP_PORT, self.dids(flows.CTL_CALL, sc.k_call),
                                 rate=rate, calls=n, hold_ms=1000)
                await asyncio.to_thread(env.wait_idle, self.settings, 90)
                cpu, wall = env.proc_cpu(proc.pid) - c0, time.monotonic() - t0
                kernel = env.proc_times(proc.pid)[1] - sys0
                after = env.stack_cpu(self.settings)
                shutil.rmtree(res.workdir, ignore_errors=True)
            finally:
                await asyncio.to_thread(proc.stop)
            ok = max(1, res.ok)
            per = {k: (after[k] - before.get(k, 0.0)) / ok * 1000 for k in after}
            per["app"] = (cpu - idle_rate * wall) / ok * 1000
            out[mode] = {"rate": rate, "calls": n, "ok": res.ok, "cpu_ms_per_call": per,
                         "app_idle_ms_per_s": idle_rate * 1000,
                         "app_kernel_ms_per_call": kernel / ok * 1000}
            self.log(f"floor {cfg} {mode}: {res.ok}/{n} calls; CPU ms/call " +
                     ", ".join(f"{k} {v:.2f}" for k, v in per.items()) +
                     f" (app in the kernel {out[mode]['app_kernel_ms_per_call']:.2f})")
        return out

    def floor_ratios(self) -> None:
        """Once every figure ran: the controller's CPU per call against the floors."""
        for cfg, out in self.details.get("floor", {}).items():
            ctl_ms = self._controller_ms(cfg)
            if ctl_ms is None:
                continue
            for mode in ("ctl", "lean"):
                app = out[mode]["cpu_ms_per_call"]["app"]
                self.figures.append(Figure(f"controller ({cfg}) CPU per call / floor {mode}",
                                           "x", ctl_ms / app, None, "-", None))
                self.figures.append(Figure(f"controller ({cfg}) CPU above floor {mode}",
                                           "ms", ctl_ms - app, None, "-", None))

    def _controller_ms(self, config: str) -> float | None:
        """The controller's CPU per call in this run: the configs figure's for ``config``,
        else the cost figure's."""
        c = self.details.get("configs", {}).get("configs", {}).get(config)
        if c is not None:
            return float(c["controller_ms"])
        cost = self.details.get("cost", {}).get("controller", {}).get("cpu_ms_per_call", {})
        return cost.get("controller")

    # ------------------------------------------------------------------ latency

    async def latency(self) -> None:
        sc = self.scale
        agent = self.agents["agent3"]
        out: dict[str, Any] = {}
        for side, prefix in (("controller", flows.CTL_CALL), ("baseline", flows.NATIVE_CALL)):
            agent.retrace(True)
            await asyncio.to_thread(env.wait_contacts, self.settings, ["agent3"])
            self.ctl.reset()
            res = await self.calls(prefix, sc.k_call, rate=50, calls=sc.lat_calls,
                                   hold_ms=1000, trace=True)
            st = self.ctl.stats()
            sent = first_invites(res.messages(), sent=True)
            got = first_invites(agent.messages(), sent=False)
            lat = [(got[n] - t) * 1000 for n, t in sent.items() if n in got]
            out[side] = {"calls": res.calls, "ok": res.ok, "matched": len(lat),
                         "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99),
                         "max_ms": max(lat, default=float("nan"))}
            if side == "controller":
                out[side]["rest_per_call"] = {k: v / max(1, st["calls"])
                                              for k, v in st["rest"].items()}
                out[side]["lag_ms"] = st["lag_ms"]
                out[side]["event_to_originate_ms"] = st["event_to_originate_ms"]
                out[side]["originate_rtt_ms"] = st["originate_rtt_ms"]
            self.log(f"latency {side}: p50 {out[side]['p50_ms']:.2f} ms, "
                     f"p99 {out[side]['p99_ms']:.2f} ms ({len(lat)}/{res.calls} matched, "
                     f"{res.ok} completed)")
            shutil.rmtree(res.workdir, ignore_errors=True)
        agent.retrace(False)
        self.details["latency"] = out
        c, b = out["controller"], out["baseline"]
        self.figures.append(Figure("setup latency p50 @50/s", "ms", c["p50_ms"], b["p50_ms"],
                                   "<= 4 ms", c["p50_ms"] <= 4))
        self.figures.append(Figure("setup latency p99 @50/s", "ms", c["p99_ms"], b["p99_ms"],
                                   "<= 12 ms", c["p99_ms"] <= 12))
        rest = sum(c.get("rest_per_call", {}).values())
        self.figures.append(Figure("ARI requests per call (answered)", "req", rest, None,
                                   "-", None))

    # ------------------------------------------------------------------ failover

    async def failover(self) -> None:
        sc = self.scale
        busy, alt = self.agents["agent1"], self.agents["agent2"]
        out: dict[str, Any] = {}
        for side, prefix in (("controller", flows.CTL_FAILOVER),
                             ("baseline", flows.NATIVE_FAILOVER)):
            busy.retrace(True)
            alt.retrace(True)
            await asyncio.to_thread(env.wait_contacts, self.settings, ["agent1", "agent2"])
            self.ctl.reset()
            res = await self.calls(prefix, sc.k_failover, rate=sc.fo_rate, calls=sc.fo_calls,
                                   hold_ms=500)
            st = self.ctl.stats()
            t486 = first_responses(busy.messages(), 486)
            talt = first_invites(alt.messages(), sent=False)
            hop = [(talt[n] - t) * 1000 for n, t in t486.items() if n in talt]
            out[side] = {"calls": res.calls, "ok": res.ok, "matched": len(hop),
                         "p50_ms": pct(hop, 0.5), "p99_ms": pct(hop, 0.99),
                         "max_ms": max(hop, default=float("nan"))}
            if side == "controller":
                out[side]["rest_per_call"] = {k: v / max(1, st["calls"])
                                              for k, v in st["rest"].items()}
                out[side]["event_to_originate_ms"] = st["event_to_originate_ms"]
                out[side]["originate_rtt_ms"] = st["originate_rtt_ms"]
            self.log(f"failover {side}: p50 {out[side]['p50_ms']:.2f} ms, "
                     f"p99 {out[side]['p99_ms']:.2f} ms ({len(hop)}/{res.calls} matched, "
                     f"{res.ok} completed)")
            shutil.rmtree(res.workdir, ignore_errors=True)
        busy.retrace(False)
        alt.retrace(False)
        self.details["failover"] = out
        c, b = out["controller"], out["baseline"]
        self.figures.append(Figure("failover hop p50 (486 -> alternate)", "ms", c["p50_ms"],
                                   b["p50_ms"], "<= 3 ms", c["p50_ms"] <= 3))
        self.figures.append(Figure("failover hop p99 (486 -> alternate)", "ms", c["p99_ms"],
                                   b["p99_ms"], "<= 10 ms", c["p99_ms"] <= 10))

    # ------------------------------------------------------------------ event loop

    async def eventloop(self) -> None:
        """A second controller process against the loopback fake ARI (Redis is real)."""
        with socket.socket() as sock:  # a free loopback TCP port
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        fake = FakeAri(env.ENV["CALLCTL_APP"] + "-ev", flows.EVENT_DID, window=50)
        await fake.start(port)
        wd = self.workdir / "ev"
        wd.mkdir(exist_ok=True)
        # its own Redis prefix: its own node lease and call state, beside the main controller
        await self.publish(prefix="benchev:")
        proc = CtlProc({**env.ENV, "CALLCTL_ARI_URL": f"http://127.0.0.1:{port}",
                        "CALLCTL_APP": fake.app, "CALLCTL_REDIS_PREFIX": "benchev:",
                        "CALLCTL_ADMIN": "off", "BENCH_LOG_LEVEL": "INFO"}, wd)
        try:
            await asyncio.to_thread(proc.start)
            proc.reset()
            res = await fake.run(self.scale.ev_seconds)
            st = await asyncio.to_thread(proc.stats)
        finally:
            await asyncio.to_thread(proc.stop)
            await fake.stop()
        res["cpu_s_per_cycle_ms"] = st["cpu_s"] / max(1, st["calls"]) * 1000
        res["lag_ms"] = st["lag_ms"]
        self.details["eventloop"] = res
        self.log(f"event loop: {res['per_s']:.0f} cycles/s")
        self.figures.append(Figure("event loop (Stasis start->end)", "cycles/s", res["per_s"],
                                   None, ">= 2000/s", res["per_s"] >= 2000))

    # ------------------------------------------------------------------ scale

    async def scale_figure(self) -> None:
        sc = self.scale
        n = sc.concurrent
        rate = 100.0 if n >= 500 else 50.0
        hold = int(n / rate * 1000) + 10_000
        assert self.settings is not None
        await asyncio.to_thread(self.ctl.stop)  # a fresh process: its peak is this run's
        await asyncio.to_thread(self.ctl.start)
        self.ctl.reset()  # idle: what the process burns with no call (timers, samplers)
        await asyncio.sleep(5)
        idle = self.ctl.stats()
        idle_rate = idle["cpu_s"] / idle["wall_s"]
        self.ctl.reset()
        task = asyncio.create_task(self.calls(flows.CTL_CALL, sc.k_call, rate=rate, calls=n,
                                              hold_ms=hold, timeout=hold / 1000 + 120))
        await asyncio.sleep(n / rate + 3)
        peak_channels = await asyncio.to_thread(env.channel_count, self.settings)
        mid = self.ctl.stats()
        res = await task
        st = self.ctl.stats()
        shutil.rmtree(res.workdir, ignore_errors=True)
        out = {"calls": n, "ok": res.ok, "failed": res.failed, "rate": rate, "hold_ms": hold,
               "asterisk_channels_at_peak": peak_channels, "live_calls_at_peak":
               mid["live_calls"], "idle_rss_mb": idle["rss_mb"], "peak_rss_mb":
               st["rss_max_mb"], "cpu_s": st["cpu_s"], "cpu_ms_per_call":
               st["cpu_s"] / max(1, st["calls"]) * 1000, "lag_ms": st["lag_ms"],
               "rest_per_call": {k: v / max(1, st["calls"]) for k, v in st["rest"].items()},
               "idle_cpu_ms_per_s": idle_rate * 1000, "wall_s": st["wall_s"],
               "cpu_ms_per_call_net_of_idle":
               (st["cpu_s"] - idle_rate * st["wall_s"]) / max(1, st["calls"]) * 1000}
        self.details["scale"] = out
        self.log(f"scale: {res.ok}/{n} completed, {mid['live_calls']} live at peak "
                 f"({peak_channels} channels), peak RSS {st['rss_max_mb']:.1f} MB, "
                 f"{out['cpu_ms_per_call']:.2f} ms CPU/call, lag p99 "
                 f"{st['lag_ms']['p99']:.1f} ms max {st['lag_ms']['max']:.1f} ms")
        self.figures.append(Figure(f"scale: peak RSS, {n} concurrent", "MB", st["rss_max_mb"],
                                   None, "<= 150 MB", st["rss_max_mb"] <= 150))
        net = out["cpu_ms_per_call_net_of_idle"]
        self.figures.append(Figure("scale: CPU per call (all CPU / calls)", "ms",
                                   out["cpu_ms_per_call"], None, "<= 1 ms",
                                   out["cpu_ms_per_call"] <= 1))
        self.figures.append(Figure("scale: CPU per call (net of idle)", "ms", net, None,
                                   "<= 1 ms", net <= 1))
        self.figures.append(Figure("scale: event-loop lag p99", "ms", st["lag_ms"]["p99"], None,
                                   "-", None))
        self.figures.append(Figure("scale: event-loop lag max", "ms", st["lag_ms"]["max"], None,
                                   "-", None))
        self.figures.append(Figure(f"scale: calls completed of {n}", "calls", res.ok, n,
                                   "= all", res.complete))


def _mean(values: Any) -> float:
    v = list(values)
    return sum(v) / len(v) if v else float("nan")


def configs_table(out: dict[str, Any], ref: str) -> str:
    """The ``configs`` figure as a table, ratios to ``ref`` and to ``stdlib``."""
    cfg = out["configs"]
    rows = [("config", "loop", "JSON", "ctl ms/call (min-max)", "kernel",
             "Asterisk", "Redis", "total", "CPU cap. ratio", f"ctl / {ref}", "ctl / stdlib")]
    for name, c in cfg.items():
        e = c["env"]
        rows.append((
            name, e["CALLCTL_LOOP"], e["CALLCTL_JSON"],
            f"{c['controller_ms']:.2f} ({c['controller_ms_min']:.2f}-"
            f"{c['controller_ms_max']:.2f})",
            f"{c['kernel_ms']:.2f}", f"{c['asterisk_ms']:.2f}", f"{c['redis_ms']:.2f}",
            f"{c['total_ms']:.2f}", f"{c['cpu_capacity_ratio']:.2f}",
            f"{c['controller_ms'] / cfg[ref]['controller_ms']:.2f}x",
            f"{c['controller_ms'] / cfg['stdlib']['controller_ms']:.2f}x" if "stdlib" in cfg
            else "-"))
    rows.append(("dialplan", "", "", "", "", "", "", f"{out['baseline_total_ms']:.2f}",
                 "1.00", "", ""))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w[i]) for i, c in enumerate(r)) for r in rows]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines)


def table(figs: list[Figure]) -> str:
    def f(v: float | None) -> str:
        if v is None:
            return "-"
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"

    rows = [("figure", "unit", "controller", "baseline", "ratio", "target", "result")]
    for g in figs:
        rows.append((g.figure, g.unit, f(g.controller), f(g.baseline),
                     "-" if g.ratio is None else f"{g.ratio:.2f}x", g.target,
                     "-" if g.ok is None else ("pass" if g.ok else "FAIL")))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w[i]) for i, c in enumerate(r)) for r in rows]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines)


# capacity last: its over-capacity steps leave Asterisk slower for a while (a full run measured
# the baseline's setup latency at 3.4 ms p50 right after them, 1.9 ms on a fresh stack)
ALL = ("cost", "floor", "configs", "latency", "failover", "eventloop", "scale", "capacity")


async def amain(args: argparse.Namespace) -> int:
    scale = SCALES[args.scale]
    only = args.only.split(",") if args.only else list(ALL)
    unknown = set(only) - set(ALL)
    if unknown:
        print(f"bench: unknown figure(s) {sorted(unknown)}; choose from {ALL}", file=sys.stderr)
        return 2
    configs = args.configs.split(",") if args.configs else list(CONFIGS)
    if set(configs) - set(CONFIGS):
        print(f"bench: unknown configuration(s) {sorted(set(configs) - set(CONFIGS))}; "
              f"choose from {tuple(CONFIGS)}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="callctl-bench-"))
    b = Bench(scale, workdir, configs, args.rounds)
    started = time.time()
    try:
        await b.setup()
        for name in only:
            await {"cost": b.cost, "floor": b.floor, "configs": b.configs_figure,
                   "capacity": b.capacity, "latency": b.latency,
                   "failover": b.failover, "eventloop": b.eventloop,
                   "scale": b.scale_figure}[name]()
        b.floor_ratios()
    finally:
        await b.teardown()
        if args.down:
            env.down()
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(table(b.figures))
    out = Path(args.json) if args.json else env.results_dir() / \
        f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    doc = {"command": " ".join(["python -m bench", *sys.argv[1:]]), "scale": asdict(scale),
           "started": started, "seconds": time.time() - started,
           "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version(),
                       "load_avg_at_end": __import__("os").getloadavg()},
           "figures": [{**asdict(f), "ratio": f.ratio} for f in b.figures],
           "details": b.details}
    out.write_text(json.dumps(doc, indent=1, default=str))
    print(f"\nJSON: {out}")
    return 0 if all(f.ok is not False for f in b.figures) else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--scale", choices=sorted(SCALES), default="small")
    p.add_argument("--only", help=f"comma-separated subset of {','.join(ALL)}")
    p.add_argument("--json", help="write the JSON here")
    p.add_argument("--configs", help="the runtime configurations the configs figure compares "
                   f"(comma-separated, the first is the reference; default: {','.join(CONFIGS)})")
    p.add_argument("--rounds", type=int, default=2,
                   help="rounds of the configs figure (default 2)")
    p.add_argument("--down", action="store_true", help="stop the bench stack afterwards")
    return asyncio.run(amain(p.parse_args(argv)))
