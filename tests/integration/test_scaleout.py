"""Issue 6: two Asterisk nodes, two controllers (real `callctl run` processes), one Redis and
Kamailio in front, all on loopback, all started and stopped here.

Ports: a private block ``7100 + 10 * CALLCTL_TEST_SLOT`` (+0/+1 node SIP, +2 Kamailio, +3/+4
ARI, +5/+6 AMI, +7 Redis, +9 a SIPp "node" that fails calls), phones at
``6110 + 100 * slot + n``, RTP ``21000 + 400 * slot`` (200 ports per node): nothing shared
with the slot's ordinary test stack, so both can run in one session. Skipped when Kamailio is
not installed (scripts/install.sh installs it).

The stack is stopped at the end of the module unless CALLCTL_KEEP_SCALE_STACK is set; to stop
a kept one: ``for d in dispatcher b a; do CALLCTL_RUN_DIR=run/scale<slot>/$d .venv/bin/callctl
$([ $d = dispatcher ] && echo dispatcher || echo stack) down; done``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from controller.adapters.ari.client import AriClient
from controller.adapters.redis import flowstore as publish
from controller.config import PROJECT_ROOT, Settings, ensure_secrets, load_settings
from controller.core.flows import loader
from controller.tools import dispatcher, stack
from controller.tools.stack import procs

from integration.conftest import until
from integration.runproc import RunProcess, clean_env
from sippctl import SIPP, CallResult, Phone, _media_ports, free_udp_port, uac_scenario

pytestmark = pytest.mark.skipif(
    shutil.which("kamailio") is None or shutil.which("kamcmd") is None,
    reason="Kamailio is not installed (apt-get install --no-install-recommends kamailio)")

SLOT = int(os.environ.get("CALLCTL_TEST_SLOT", "0"))
BASE = 7100 + 10 * SLOT
NODES = ("a", "b")
SIP = {"a": BASE, "b": BASE + 1}
KAM_PORT = BASE + 2
ARI = {"a": BASE + 3, "b": BASE + 4}
AMI = {"a": BASE + 5, "b": BASE + 6}
REDIS_URL = f"redis://127.0.0.1:{BASE + 7}/0"
PHONE_BASE = 6110 + 100 * SLOT
RTP = {"a": 21000 + 400 * SLOT, "b": 21200 + 400 * SLOT}
RUN = PROJECT_ROOT / "run" / f"scale{SLOT}"
APP = f"callctl-scale{SLOT}"
LEASE_MS = 2000
NODE_LOST_MS = 3000
KEEP = bool(os.environ.get("CALLCTL_KEEP_SCALE_STACK"))
"""Keep the two nodes, Redis and Kamailio up after the module (faster reruns). Not tied to
CALLCTL_KEEP_STACK: a whole-suite run must not leave four more processes behind."""

USERS = """
settings:
  timezone: UTC
users:
  alice: {endpoint: agent1}
  bob: {endpoint: agent2}
  carol: {endpoint: agent3}
  dave: {endpoint: agent4}
  erin: {endpoint: agent5}
"""
AGENTS = {"alice": "agent1", "bob": "agent2", "carol": "agent3", "dave": "agent4"}

BALANCED = USERS + """
departments:
  sales: {strategy: balanced, members: [alice, bob, carol, dave], ring_time: 3}
  pair: {strategy: serial, members: [alice, bob], ring_time: 3}
  solo: {strategy: serial, members: [alice], ring_time: 3}
  care: {strategy: serial, members: [alice, bob], ring_time: 3, sticky: {ttl: 1h}}
  slow: {strategy: serial, members: [erin], ring_time: 8}
flows:
  main:
    dids: ["+15550600"]
    entry: rr
    nodes:
      rr: {type: department, department: sales, fallback: bye}
      bye: {type: hangup}
  pair:
    dids: ["+15550601"]
    entry: ring
    nodes:
      ring: {type: department, department: pair, fallback: bye}
      bye: {type: hangup}
  solo:
    dids: ["+15550602"]
    entry: ring
    nodes:
      ring: {type: department, department: solo, fallback: bye}
      bye: {type: hangup}
  care:
    dids: ["+15550603"]
    entry: ring
    nodes:
      ring: {type: department, department: care, fallback: bye}
      bye: {type: hangup}
  slow:
    dids: ["+15550604"]
    entry: hello
    nodes:
      hello: {type: message, prompts: [beep], next: ring}
      ring: {type: department, department: slow, fallback: bye}
      bye: {type: hangup}
"""


@functools.cache
def redis_password() -> str:
    """The scale-out Redis's password: node a's (its `stack up` starts that Redis, with
    requirepass), given to every node and controller here."""
    return ensure_secrets(RUN / "a" / "secrets.env", {})["REDIS_PASSWORD"]


def node_env(name: str) -> dict[str, str]:
    return {
        "CALLCTL_RUN_DIR": str(RUN / name),
        "CALLCTL_APP": APP,
        "CALLCTL_NODE": name,
        "CALLCTL_SIP_PORT": str(SIP[name]),
        "CALLCTL_ARI_URL": f"http://127.0.0.1:{ARI[name]}",
        "CALLCTL_AMI_PORT": str(AMI[name]),
        "REDIS_URL": REDIS_URL,
        "CALLCTL_REDIS_PASSWORD": redis_password(),
        "CALLCTL_RTP_START": str(RTP[name]),
        "CALLCTL_RTP_END": str(RTP[name] + 199),
        "CALLCTL_AGENT_PORT_BASE": str(PHONE_BASE),
        "CALLCTL_PSTN_PORT": str(PHONE_BASE + 20),
        # the dispatcher is the nodes' carrier: it sends from 127.0.0.1
        "CALLCTL_CARRIER_MATCH": "127.0.0.1",
    }


# ------------------------------------------------------------------------------ the stack


@dataclass
class Scale:
    nodes: dict[str, Settings]
    ds: dispatcher.DispatcherSettings

    def ari(self, node: str) -> AriClient:
        s = self.nodes[node]
        return AriClient(s.ari_url, s.ari_user, s.ari_password, s.app)

    def node_up(self, node: str) -> None:
        for line in stack.up(self.nodes[node], redis=node == "a"):
            print(line)

    def kill_node(self, node: str) -> None:
        pid = procs.read_pid(self.nodes[node].run_dir / "run" / "asterisk.pid")
        assert pid is not None, f"node {node} is not running"
        os.kill(pid, signal.SIGKILL)

    def flags(self) -> dict[str, str]:
        """Dispatcher state per node: 'AP' active, 'IP' inactive (probing), ..."""
        dests = dispatcher.destinations(self.ds)
        return {n: dests.get(f"sip:127.0.0.1:{SIP[n]}", "?") for n in NODES}


@pytest.fixture(scope="module")
def scale() -> Iterator[Scale]:
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCTL_")
                or k in ("CALLCTL_ASTERISK", "CALLCTL_AST22_ROOT")}
    nodes = {n: load_settings({**base_env, **node_env(n)}, generate=True) for n in NODES}
    ds = dispatcher.load({
        **base_env, "CALLCTL_RUN_DIR": str(RUN / "dispatcher"),
        "CALLCTL_DISPATCHER_PORT": str(KAM_PORT),
        "CALLCTL_SIP_NODES": ",".join(f"127.0.0.1:{SIP[n]}" for n in NODES),
        # probe every second; a node silent for 2 s (not even 100 Trying) counts as failed:
        # less would also fail over from a node that is only slow on a loaded test machine
        "CALLCTL_DISPATCHER_PING": "1", "CALLCTL_DISPATCHER_TIMEOUT_MS": "2000"})
    sc = Scale(nodes, ds)
    try:
        for n in NODES:
            sc.node_up(n)
        for line in dispatcher.up(ds):
            print(line)
        deadline = time.monotonic() + 15
        while not all(f.startswith("A") for f in sc.flags().values()):
            assert time.monotonic() < deadline, f"dispatcher never saw both nodes: {sc.flags()}"
            time.sleep(0.2)
        yield sc
    finally:
        if not KEEP:
            dispatcher.down(ds)
            for n in reversed(NODES):
                stack.down(nodes[n])


# ------------------------------------------------------------------------------ controllers


class Controller(RunProcess):
    """A `callctl run` process serving both nodes, with ``primary`` as its usual node."""

    def __init__(self, name: str, primary: str, sc: Scale, prefix: str, logdir: Path) -> None:
        na, nb = sc.nodes["a"], sc.nodes["b"]
        super().__init__(clean_env(**{
            "CALLCTL_RUN_DIR": str(RUN / name),
            "CALLCTL_APP": APP,
            "CALLCTL_ARI_URLS": f"a={na.ari_url},b={nb.ari_url}",
            "CALLCTL_ARI_PASSWORD_A": na.ari_password,
            "CALLCTL_ARI_PASSWORD_B": nb.ari_password,
            "CALLCTL_AMI_PORT_A": str(na.ami_port),
            "CALLCTL_AMI_PORT_B": str(nb.ami_port),
            "CALLCTL_AMI_SECRET_A": na.ami_secret,
            "CALLCTL_AMI_SECRET_B": nb.ami_secret,
            "REDIS_URL": REDIS_URL,
            "CALLCTL_REDIS_PASSWORD": redis_password(),
            "CALLCTL_REDIS_PREFIX": prefix,
            "CALLCTL_CONTROLLER_ID": name,
            "CALLCTL_NODES_PRIMARY": primary,
            "CALLCTL_LEASE_MS": str(LEASE_MS),
            "CALLCTL_NODE_LOST_MS": str(NODE_LOST_MS),
            "CALLCTL_ADMIN": "off",
            "CALLCTL_LOG_FORMAT": "json",
        }), logdir / f"{name}.log")
        self.name = name
        self.started = 0.0
        """When the process was last started (monotonic)."""

    def start(self) -> None:
        (RUN / self.name).mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        super().start()


class Phones:
    """SIPp agent phones, each one reachable from both nodes."""

    QUALIFY_TIMEOUT = 2.0  # asterisk-conf/pjsip.conf agent-static-aor

    def __init__(self, sc: Scale) -> None:
        self.sc = sc
        self.phones: dict[str, Phone] = {}

    async def start(self, *endpoints: str, behaviour: str = "answer", **kw: int) -> None:
        for ep in endpoints:
            ph = Phone(ep, PHONE_BASE + int(ep.removeprefix("agent")), behaviour, **kw)
            self.phones[ep] = ph
            await asyncio.to_thread(ph.start)
        listening = time.monotonic()
        await asyncio.gather(*(self.wait_avail(node, ep, listening)
                               for ep in endpoints for node in NODES))

    async def wait_avail(self, node: str, endpoint: str, listening: float) -> None:
        """Until the node sees the phone Avail, and no qualify sent before the phone
        listened can still time out and mark it Unavail behind our back."""
        s = self.sc.nodes[node]

        async def ok() -> bool:
            await asyncio.to_thread(stack.asterisk_cli, s, f"pjsip qualify {endpoint}")
            out = await asyncio.to_thread(stack.asterisk_cli, s,
                                          f"pjsip show contacts like {endpoint}")
            avail = any("Avail" in ln.split() for ln in out.splitlines() if "Contact:" in ln)
            return avail and time.monotonic() - listening > self.QUALIFY_TIMEOUT + 0.3

        await until(ok, 15, f"{endpoint} reachable from node {node}")

    def cleanup(self) -> None:
        for ph in self.phones.values():
            ph.cleanup()


@dataclass
class Env:
    sc: Scale
    prefix: str
    redis: aioredis.Redis
    phones: Phones
    logdir: Path
    ctls: dict[str, Controller] = field(default_factory=dict)

    async def publish(self, yaml_text: str) -> None:
        d = self.logdir / f"flows-{uuid.uuid4().hex[:6]}"
        d.mkdir()
        (d / "flows.yaml").write_text(textwrap.dedent(yaml_text))
        res = loader.load([d])
        assert not res.errors, "\n".join(map(str, res.errors))
        await publish.publish(self.redis, res, prefix=self.prefix)

    async def start_controllers(self) -> None:
        """c1 usually serves node a, c2 node b; each stands in for the other."""
        for name, primary in (("c1", "a"), ("c2", "b")):
            self.ctls[name] = Controller(name, primary, self.sc, self.prefix, self.logdir)
            self.ctls[name].start()
        await until(lambda: self.owners_are({"a": "c1", "b": "c2"}), 20,
                    "c1 holding node a and c2 node b")
        # each websocket is up once Asterisk lists the Stasis app on the node
        for node in NODES:
            async with self.sc.ari(node) as ari:
                async def app_up(ari: AriClient = ari) -> bool:
                    apps = await ari.request("GET", "/applications") or []
                    return any(a.get("name") == APP for a in apps)

                await until(app_up, 10, f"Stasis app on node {node}")
        await until(lambda: all(c.said("ARI events: connected") for c in self.ctls.values()),
                    10, "both controllers connected")

    async def owners_are(self, want: dict[str, str]) -> bool:
        for node, ctl in want.items():
            owner = await self.redis.get(f"{self.prefix}lease:node:{node}")
            if not owner or not owner.startswith(f"{ctl}/"):
                return False
        return True

    async def records(self) -> list[dict[str, Any]]:
        rows = await self.redis.xrange(f"{self.prefix}calllog")
        return [json.loads(f["record"]) for _, f in rows]

    async def wait_records(self, n: int, timeout: float = 30) -> list[dict[str, Any]]:
        async def enough() -> bool:
            return len(await self.records()) >= n

        await until(enough, timeout, f"{n} call records")
        return await self.records()

    async def trace(self, call_id: str) -> list[dict[str, Any]]:
        raw = await self.redis.get(f"{self.prefix}trace:{call_id}")
        return json.loads(raw) if raw else []

    async def call(self, did: str, *, via: str = "dispatcher", hold_ms: int = 1000,
                   caller: str = "+15551230001") -> CallResult:
        port = KAM_PORT if via == "dispatcher" else SIP[via]
        return await asyncio.to_thread(place_routed_call, did, port, hold_ms=hold_ms,
                                       caller=caller)

    async def keys(self, pattern: str) -> list[str]:
        return [k async for k in self.redis.scan_iter(match=f"{self.prefix}{pattern}")]

    async def nothing_left(self) -> bool:
        """No channel or bridge on either node, no live call, busy mark or call lease."""
        for node in NODES:
            if self.sc.flags()[node].startswith("I"):
                continue  # a node this test killed
            async with self.sc.ari(node) as ari:
                if await ari.list_channels() or await ari.list_bridges():
                    return False
        for pattern in ("call:*", "busy:*", "lease:call:*", "calls:node:*"):
            if await self.keys(pattern):
                return False
        return not await self.redis.zcard(f"{self.prefix}calls:live")


@pytest.fixture
async def env(scale: Scale) -> AsyncIterator[Env]:
    prefix = f"s{uuid.uuid4().hex[:8]}:"
    redis = aioredis.from_url(scale.nodes["a"].redis_url, decode_responses=True)
    logdir = Path(tempfile.mkdtemp(prefix="callctl-scale-"))
    e = Env(scale, prefix, redis, Phones(scale), logdir)
    try:
        yield e
    finally:
        kill_callers()
        for c in e.ctls.values():
            c.stop()
        leftovers: list[str] = []
        for node in NODES:
            if scale.flags()[node].startswith("I"):
                continue
            async with scale.ari(node) as ari:
                for ch in await ari.list_channels() or []:
                    leftovers.append(f"{node}:{ch['id']}")
                    with contextlib.suppress(Exception):
                        await ari.hangup(ch["id"])
                for br in await ari.list_bridges() or []:
                    leftovers.append(f"{node}:bridge:{br['id']}")
                    with contextlib.suppress(Exception):
                        await ari.destroy_bridge(br["id"])
        e.phones.cleanup()
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
        for c in e.ctls.values():  # shown by pytest only when the test failed
            print(f"---- {c.name} log (last 80 lines)")
            print("\n".join(c.log.read_text(errors="replace").splitlines()[-80:]))
        shutil.rmtree(logdir, ignore_errors=True)
        assert not leftovers, f"left behind: {leftovers}"


# ------------------------------------------------------------------------------ SIP caller


def routed_scenario(*, caller: str, hold_ms: int) -> str:
    """sippctl's caller, but following the dialog's route set (a carrier behind a proxy):
    the ACK and the BYE go to the Contact through the Record-Route of the 200 OK."""
    text = uac_scenario(caller=caller, hold_ms=hold_ms, digits=[])
    text = text.replace('<recv response="200" rtd="true"/>',
                        '<recv response="200" rtd="true" rrs="true"/>', 1)
    ack = "ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0"
    i = text.index(ack)  # the first ACK acknowledges the 200 OK (the second a failure)
    text = text[:i] + "ACK [next_url] SIP/2.0\n[routes]" + text[i + len(ack):]
    return text.replace("BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0",
                        "BYE [next_url] SIP/2.0\n[routes]")


_CALLERS: set[subprocess.Popen[str]] = set()
"""Running SIPp callers (a test that leaves one hanging has it killed at teardown)."""


def place_routed_call(did: str, port: int, *, hold_ms: int, caller: str,
                      timeout: float = 60.0) -> CallResult:
    work = Path(tempfile.mkdtemp(prefix="callctl-uac-"))
    try:
        scen = work / "uac.xml"
        scen.write_text(routed_scenario(caller=caller, hold_ms=hold_ms))
        trace = work / "messages.log"
        argv = [SIPP, f"127.0.0.1:{port}", "-sf", str(scen), "-s", did, "-i", "127.0.0.1",
                "-p", str(free_udp_port()), "-mp", str(next(_media_ports)), "-m", "1",
                "-nostdin", "-trace_msg", "-message_file", str(trace), "-timeout",
                f"{int(timeout)}s", "-timeout_error", "-aa", "-nd",
                "-default_behaviors", "-abortunexp,-bye"]
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=work)
        _CALLERS.add(proc)
        try:
            out, err = proc.communicate(timeout=timeout + 10)
        finally:
            _CALLERS.discard(proc)
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        text = trace.read_text(errors="replace") if trace.exists() else ""
        return CallResult(proc.returncode, out[-2000:], err[-2000:], time.monotonic() - t0,
                          text)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def kill_callers() -> None:
    for proc in list(_CALLERS):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


BROKEN_PORT = BASE + 9
BROKEN_NODE = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="a node that fails every call">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
SIP/2.0 503 Service Unavailable
[last_Via:]
[last_From:]
[last_To:];tag=[pid]-[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>
</scenario>
"""


@contextlib.contextmanager
def broken_node(workdir: Path) -> Iterator[Path]:
    """A SIPp 'node' that answers OPTIONS (-aa) and 503 to every INVITE; yields its trace."""
    scen, trace = workdir / "broken.xml", workdir / "broken-messages.log"
    scen.write_text(BROKEN_NODE)
    proc = subprocess.Popen(
        [SIPP, "-sf", str(scen), "-i", "127.0.0.1", "-p", str(BROKEN_PORT), "-aa", "-nostdin",
         "-trace_msg", "-message_file", str(trace), "-nd", "-mp", str(next(_media_ports))],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        cwd=workdir, start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while not trace.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the broken node did not start"
        yield trace
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def _skips(trace: list[dict[str, Any]]) -> dict[str, str]:
    return {t["user"]: t["reason"] for t in trace if t["kind"] == "skip" and "user" in t}


def _dump(x: Any) -> str:
    return json.dumps(x, indent=1, default=str)[:4000]


# ------------------------------------------------------------------------------ tests


async def test_forty_calls_through_the_dispatcher_share_a_balanced_department_evenly(
        env: Env) -> None:
    await env.phones.start(*AGENTS.values(), ring_ms=100)
    await env.publish(BALANCED)
    await env.start_controllers()

    results: list[CallResult] = []
    for wave in range(10):  # 4 at once: each wave starts at 4 different members
        got = await asyncio.gather(*(
            env.call("+15550600", hold_ms=700, caller=f"+1555123{wave:02d}{i}")
            for i in range(4)))
        results += got
        try:
            await env.wait_records(4 * (wave + 1))
        except AssertionError:
            for r in got:
                print("caller:", r.rc, r.final_status(), r.stderr[-300:], r.trace[-2500:])
            raise

    recs = await env.records()
    assert [r.final_status() for r in results] == [200] * 40, results[0].trace[-1500:]
    assert Counter(r["result"] for r in recs) == {"completed": 40}, _dump(recs[:2])
    per_agent = Counter(r["answered_by"] for r in recs)
    if per_agent != {"alice": 10, "bob": 10, "carol": 10, "dave": 10}:
        for r in recs:
            tr = await env.trace(r["call_id"])
            print(r["call_id"], r["node"], r["answered_by"], [
                (t["kind"], t.get("users") or t.get("user"), t.get("reason") or t.get("outcome"))
                for t in tr if t["kind"] in ("ring", "skip", "leg")])
    assert per_agent == {"alice": 10, "bob": 10, "carol": 10, "dave": 10}, per_agent
    per_node = Counter(r["node"] for r in recs)
    print("calls per node:", dict(per_node))
    assert set(per_node) == {"a", "b"} and min(per_node.values()) >= 10, per_node
    await until(env.nothing_left, 10, "no channel, bridge, live call, busy mark or lease")


async def test_an_agent_bridged_on_node_a_is_skipped_as_busy_by_a_call_on_node_b(
        env: Env) -> None:
    await env.phones.start("agent1", "agent2", ring_ms=100)
    await env.publish(BALANCED)
    for node in NODES:  # each node's outage targets are written by the controller holding it
        await asyncio.to_thread(stack.asterisk_cli, env.sc.nodes[node],
                                "database deltree callctl_failover")
    await env.start_controllers()

    async def outage_targets_on(node: str) -> bool:
        out = await asyncio.to_thread(stack.asterisk_cli, env.sc.nodes[node],
                                      "database show callctl_failover")
        return all(did in out for did in ("+15550600", "+15550601", "+15550604"))

    for node in NODES:
        await until(lambda node=node: outage_targets_on(node), 10,
                    f"outage targets in node {node}'s AstDB")

    first = asyncio.create_task(env.call("+15550602", via="a", hold_ms=6000,
                                         caller="+15551239001"))

    async def alice_busy() -> bool:
        return await env.redis.get(f"{env.prefix}busy:alice") is not None

    await until(alice_busy, 10, "alice bridged on node a")
    second = await env.call("+15550601", via="b", hold_ms=800, caller="+15551239002")
    recs = await env.wait_records(1)
    assert second.final_status() == 200
    rec = recs[0]
    assert rec["node"] == "b" and rec["answered_by"] == "bob", _dump(rec)
    trace = await env.trace(rec["call_id"])
    assert _skips(trace).get("alice") == "busy", _dump(trace)
    assert not [t for t in trace if t["kind"] == "leg" and t.get("user") == "alice"]

    assert (await first).final_status() == 200
    recs = await env.wait_records(2)
    assert recs[1]["node"] == "a" and recs[1]["answered_by"] == "alice", _dump(recs[1])
    await until(env.nothing_left, 10, "nothing left")


async def test_a_sticky_caller_finds_their_agent_whichever_node_takes_the_call(
        env: Env) -> None:
    await env.phones.start("agent1", behaviour="busy")
    await env.phones.start("agent2", ring_ms=100)
    await env.publish(BALANCED)
    await env.start_controllers()

    # on node a: alice is busy (486), bob answers: the caller is remembered as bob's
    first = await env.call("+15550603", via="a", hold_ms=500, caller="+15557770001")
    assert first.final_status() == 200
    (rec,) = await env.wait_records(1)
    assert rec["node"] == "a" and rec["answered_by"] == "bob", _dump(rec)
    rings = [t["users"] for t in await env.trace(rec["call_id"]) if t["kind"] == "ring"]
    assert rings == [["alice"], ["bob"]]

    # the same caller on node b: bob rings first (alice would otherwise), and answers
    second = await env.call("+15550603", via="b", hold_ms=500, caller="+15557770001")
    assert second.final_status() == 200
    rec = (await env.wait_records(2))[1]
    assert rec["node"] == "b" and rec["answered_by"] == "bob", _dump(rec)
    trace = await env.trace(rec["call_id"])
    assert [t["users"] for t in trace if t["kind"] == "ring"] == [["bob"]], _dump(trace)
    assert env.phones.phones["agent1"].invites() == 1
    await until(env.nothing_left, 10, "nothing left")


async def test_a_killed_controller_s_calls_are_adopted_by_the_other_and_end_cleanly(
        env: Env) -> None:
    await env.phones.start(*AGENTS.values(), ring_ms=100)
    await env.phones.start("agent5", behaviour="noanswer")
    await env.publish(BALANCED)
    await env.start_controllers()

    calls = [asyncio.create_task(env.call("+15550600", hold_ms=9000,
                                          caller=f"+155512380{i}")) for i in range(4)]
    # and one call on node a still in its flow (ringing erin, who does not answer)
    ringing = asyncio.create_task(env.call("+15550604", via="a", hold_ms=30000,
                                           caller="+15551238099"))

    async def all_bridged() -> bool:
        return len(await env.keys("busy:*")) == 4

    async def erin_ringing() -> bool:
        async with env.sc.ari("a") as ari:
            return any("agent5" in c["name"] for c in await ari.list_channels() or [])

    await until(all_bridged, 15, "4 calls bridged")
    await until(erin_ringing, 10, "erin ringing through node a")
    live = await env.redis.smembers(f"{env.prefix}calls:node:a")
    mid_flow = [c for c in live if await env.redis.hget(f"{env.prefix}call:{c}", "did")
                == "+15550604"]
    assert len(mid_flow) == 1, live
    on_a = sorted(live - set(mid_flow))
    on_b = sorted(await env.redis.smembers(f"{env.prefix}calls:node:b"))
    assert on_a and on_b, (on_a, on_b)
    for cid in on_a:
        assert (await env.redis.get(f"{env.prefix}lease:call:{cid}")).startswith("c1/")

    killed_at = time.monotonic()
    env.ctls["c1"].kill9()

    async def adopted() -> bool:
        owners = [await env.redis.get(f"{env.prefix}lease:call:{c}") for c in on_a]
        return all(o and o.startswith("c2/") for o in owners)

    await until(lambda: env.owners_are({"a": "c2", "b": "c2"}), 10, "c2 holding node a")
    await until(adopted, 10, "c2 owning node a's calls")
    print(f"adopted {len(on_a)} calls {time.monotonic() - killed_at:.1f} s after the kill")
    assert len(await env.keys("busy:*")) == 4  # still bridged, still busy

    results = await asyncio.gather(*calls)  # the callers hang up after 9 s
    assert [r.final_status() for r in results] == [200] * 4
    recs = await env.wait_records(4)
    bridged = [r for r in recs if r["call_id"] != mid_flow[0]]
    assert Counter(r["result"] for r in bridged) == {"completed": 4}, _dump(recs)
    for rec in bridged:
        kinds = [t["kind"] for t in await env.trace(rec["call_id"])]
        assert ("adopted" in kinds) == (rec["call_id"] in on_a), (rec["call_id"], kinds)
    assert env.ctls["c2"].said("adopted from c1/"), env.ctls["c2"].log.read_text()[-3000:]

    # the call that was mid-flow ran its flow again under c2: erin rang a second time (her
    # first ring was cancelled), nobody answered, the flow hung up
    assert (await ringing).final_status() == 200
    recs = await env.wait_records(5)
    (rec,) = [r for r in recs if r["call_id"] == mid_flow[0]]
    assert rec["result"] == "hangup" and rec["path"] == ["hello", "ring", "bye"], _dump(rec)
    adopted = [t for t in await env.trace(rec["call_id"]) if t["kind"] == "adopted"]
    assert adopted and adopted[0]["restarted"] is True and adopted[0]["previous"].startswith(
        "c1/"), adopted
    erin = env.phones.phones["agent5"]
    assert erin.invites() == 2 and "CANCEL sip:" in erin.messages()
    # the agents' legs were hung up by the adopter too: every phone got its BYE
    for ep in AGENTS.values():
        assert "BYE sip:" in env.phones.phones[ep].messages(), ep
    await until(env.nothing_left, 10, "nothing left")


async def test_a_stopped_controller_hands_its_calls_over_and_gets_its_node_back_when_back(
        env: Env) -> None:
    """c2 (primary for node b) is stopped with a call bridged on b: it hands the call over and
    c1 stands in for b at once; a second call is bridged on b through c1; c2 starts again:
    c1 gives node b back with both calls, c2 adopts them and ends them at hangup."""
    await env.phones.start("agent1", "agent2", ring_ms=100)
    await env.publish(BALANCED)
    await env.start_controllers()
    c1, c2 = env.ctls["c1"], env.ctls["c2"]
    p = env.prefix

    async def lease(cid: str) -> str:
        return await env.redis.get(f"{p}lease:call:{cid}") or ""

    async def busy(user: str) -> bool:
        return await env.redis.get(f"{p}busy:{user}") is not None

    # 1. alice bridged on node b, driven by c2
    first = asyncio.create_task(env.call("+15550602", via="b", hold_ms=28_000,
                                         caller="+15551236001"))
    await until(lambda: busy("alice"), 10, "alice bridged on node b")
    (cid1,) = await env.redis.smembers(f"{p}calls:node:b")
    assert (await lease(cid1)).startswith("c2/")

    # 2. c2 stops cleanly: the call is handed over, c1 takes node b and adopts it at once.
    # (A controller stands in only after its first two lease times: c1 is past them here.)
    await asyncio.sleep(max(0.0, c1.started + 2 * LEASE_MS / 1000 + 0.5 - time.monotonic()))
    stopped = time.monotonic()
    assert c2.term() == 0
    assert c2.said("stop: 1 calls handed over (1 bridged, 0 in their flow)")
    await until(lambda: env.owners_are({"a": "c1", "b": "c1"}), 10, "c1 standing in for b")
    await until(lambda: _starts(lease(cid1), "c1/"), 10, "c1 driving the call")
    took_stop = time.monotonic() - stopped
    assert await busy("alice") and "BYE sip:" not in env.phones.phones["agent1"].messages()

    # 3. bob bridged on node b, through c1 (alice is busy: skipped)
    second = asyncio.create_task(env.call("+15550601", via="b", hold_ms=16_000,
                                          caller="+15551236002"))
    await until(lambda: busy("bob"), 10, "bob bridged on node b through c1")
    (cid2,) = set(await env.redis.smembers(f"{p}calls:node:b")) - {cid1}
    assert (await lease(cid2)).startswith("c1/")

    # 4. c2 is back: c1 gives node b back with both calls, c2 adopts them
    c2.start()
    restarted = time.monotonic()

    async def c2_drives_both() -> bool:
        return all([await _starts(lease(c), "c2/") for c in (cid1, cid2)])

    await until(lambda: env.owners_are({"a": "c1", "b": "c2"}), 15, "node b back with c2")
    await until(c2_drives_both, 10, "c2 driving both calls")
    took_back = time.monotonic() - restarted
    print(f"stop handover: c1 drove the call {took_stop:.2f} s after c2's SIGTERM; give-back: "
          f"c2 drove both calls {took_back:.2f} s after its restart (lease {LEASE_MS} ms; "
          f"give-back waits for c2 to be seen alive for a lease time)")
    assert c1.said("node b: handed back to c2, its primary controller: 2 calls handed over "
                   "(2 bridged, 0 in their flow)"), c1.log.read_text()[-3000:]
    assert await busy("alice") and await busy("bob")
    async with env.sc.ari("b") as ari:
        bridges = await ari.list_bridges() or []
    assert sorted(len(b["channels"]) for b in bridges) == [2, 2], bridges
    for ep in ("agent1", "agent2"):
        assert "BYE sip:" not in env.phones.phones[ep].messages(), ep

    # 5. the callers hang up: c2 hangs up each agent and logs each call once
    results = await asyncio.gather(first, second)
    assert [r.final_status() for r in results] == [200, 200]
    for r in results:  # each caller hung up itself (the call was never torn down)
        assert _received(r.trace, "BYE") == 0 and r.rc == 0, r.trace[-2000:]
    await until(lambda: all("BYE sip:" in env.phones.phones[ep].messages()
                            for ep in ("agent1", "agent2")), 5, "a BYE to each agent")
    await until(env.nothing_left, 10, "nothing left")
    recs = await env.records()
    assert sorted(r["call_id"] for r in recs) == sorted([cid1, cid2]), _dump(recs)
    assert all(r["result"] == "completed" and r["node"] == "b" for r in recs), _dump(recs)
    assert {r["call_id"]: r["answered_by"] for r in recs} == {cid1: "alice", cid2: "bob"}
    previous = {c: [t["previous"].split("/")[0] for t in await env.trace(c)
                    if t["kind"] == "adopted"] for c in (cid1, cid2)}
    assert previous == {cid1: ["c2", "c1"], cid2: ["c1"]}, previous


async def _starts(aw: Any, prefix: str) -> bool:
    return str(await aw).startswith(prefix)


def _received(trace: str, method: str) -> int:
    """Requests ``method`` a SIPp message trace shows as received."""
    return sum(1 for b in trace.split("message received")[1:]
               if any(ln.startswith(f"{method} sip:") for ln in b.splitlines()[1:4]))


async def test_a_killed_node_loses_only_its_calls_and_the_dispatcher_routes_around_it(
        env: Env) -> None:
    sc = env.sc
    await env.phones.start("agent1", "agent2", ring_ms=100)
    await env.publish(BALANCED)
    await env.start_controllers()
    try:
        # alice is bridged through node b when b dies
        lost = asyncio.create_task(env.call("+15550602", via="b", hold_ms=60000,
                                            caller="+15551237001"))

        async def alice_bridged() -> bool:  # booked when she answers, then bridged
            async with env.sc.ari("b") as ari:
                bridged = any(len(b["channels"]) == 2 for b in await ari.list_bridges() or [])
            return bridged and await env.redis.get(f"{env.prefix}busy:alice") is not None

        await until(alice_bridged, 10, "alice bridged on node b")
        sc.kill_node("b")
        killed = time.monotonic()

        # its call ends (NODE_LOST_MS) and alice is free again: busy mark released, logged
        recs = await env.wait_records(1, timeout=NODE_LOST_MS / 1000 + 10)
        assert recs[0]["node"] == "b" and recs[0]["result"] == "node_lost", _dump(recs[0])
        assert await env.redis.get(f"{env.prefix}busy:alice") is None

        # the dispatcher marks b inactive on its own (OPTIONS probing)
        await until(lambda: sc.flags()["b"].startswith("I"), 10, "node b inactive")
        print(f"node b marked {sc.flags()['b']} {time.monotonic() - killed:.1f} s after the kill")
        assert f"node down: sip:127.0.0.1:{SIP['b']}" in sc.ds.log.read_text()
        assert sc.flags()["a"].startswith("A")

        # new calls all go to node a, and alice takes them
        for i in range(4):
            res = await env.call("+15550602", hold_ms=500, caller=f"+155512370{i + 2}")
            assert res.final_status() == 200, res.trace[-1500:]
        recs = await env.wait_records(5)
        assert [r["node"] for r in recs[1:]] == ["a"] * 4, _dump(recs)
        assert [r["answered_by"] for r in recs[1:]] == ["alice"] * 4

        # a node that answers probes but fails calls (503): of two calls at once, the one
        # the dispatcher sends there moves on to node a (to alice then bob: an agent takes
        # one call at a time)
        broken = f"sip:127.0.0.1:{BROKEN_PORT}"
        with broken_node(env.logdir) as trace:
            await asyncio.to_thread(dispatcher.kamcmd, sc.ds, "dispatcher.add", "1", broken)
            try:
                both = await asyncio.gather(*(env.call("+15550601", hold_ms=500,
                                                       caller=f"+15551237{i}10")
                                              for i in range(2)))
            finally:
                await asyncio.to_thread(dispatcher.kamcmd, sc.ds, "dispatcher.remove", "1",
                                        broken)
            assert [r.final_status() for r in both] == [200, 200]
            assert trace.read_text().count("SIP/2.0 503 Service Unavailable") >= 1
        recs = await env.wait_records(7)
        assert [r["node"] for r in recs[5:]] == ["a", "a"], _dump(recs[5:])
        assert f"node {broken} failed (503)" in sc.ds.log.read_text()
        kill_callers()  # the first caller's dialog died with node b
        await asyncio.gather(lost, return_exceptions=True)
    finally:
        if sc.flags()["b"][:1] != "A":
            await asyncio.to_thread(sc.node_up, "b")
            await until(lambda: sc.flags()["b"].startswith("A"), 15, "node b back")
    await until(env.nothing_left, 10, "nothing left")
