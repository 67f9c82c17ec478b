"""`callctl dispatcher up|down|status`: Kamailio as the SIP dispatcher in front of the nodes.

Carriers send their INVITEs to the dispatcher; it spreads new calls over the Asterisk nodes
(round-robin over the active ones), probes each node with SIP OPTIONS, marks a silent node
inactive, and moves a call on to the next node when one answers 500/503 or nothing at all.
The config lives in ``kamailio/`` (``kamailio.cfg``, ``dispatcher.list``); it is rendered into
``<run>/kamailio/`` with the settings below and Kamailio runs as the project's own process,
like Asterisk and Redis in ``controller.tools.stack``.

Settings (environment):

- ``CALLCTL_DISPATCHER_BIND`` / ``CALLCTL_DISPATCHER_PORT``: where it listens (UDP;
  default ``127.0.0.1:5080``). Point the carrier here. Every node must accept the dispatcher
  as its carrier: set each node's ``CALLCTL_CARRIER_MATCH`` to the dispatcher's address.
- ``CALLCTL_SIP_NODES``: the nodes' SIP addresses, ``ip:port`` comma-separated (default: the
  local node, ``CALLCTL_SIP_BIND``:``CALLCTL_SIP_PORT``). IP addresses only (no DNS).
- ``CALLCTL_DISPATCHER_PING``: OPTIONS probe interval in seconds (default 5).
- ``CALLCTL_DISPATCHER_TIMEOUT_MS``: how long a node may stay silent (not even 100 Trying)
  on an INVITE or a probe before it counts as failed (default 2000).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from controller.config import PROJECT_ROOT, ConfigError, _bad, _port
from controller.tools.stack.procs import StackError, read_pid, spawn, stop_pid

CFG_DIR = PROJECT_ROOT / "kamailio"
SET_ID = 1
"""The dispatcher set holding the Asterisk nodes (``ds_select_dst("1", ...)``)."""


@dataclass(frozen=True)
class DispatcherSettings:
    run_dir: Path
    bind: str = "127.0.0.1"
    port: int = 5080
    nodes: tuple[tuple[str, int], ...] = (("127.0.0.1", 5060),)
    ping_interval: int = 5
    timeout_ms: int = 2000
    probe_threshold: int = 1
    children: int = 2

    @property
    def dir(self) -> Path:
        return self.run_dir / "kamailio"

    @property
    def ctl_socket(self) -> str:
        return f"unix:{self.dir / 'ctl.sock'}"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "run" / "kamailio.pid"

    @property
    def log(self) -> Path:
        return self.run_dir / "log" / "kamailio.log"

    def uri(self, host: str, port: int) -> str:
        return f"sip:{host}:{port}"


def parse_nodes(raw: str, name: str = "CALLCTL_SIP_NODES") -> tuple[tuple[str, int], ...]:
    """``"10.0.0.5:5060,10.0.0.6:5060"`` -> ((host, port), ...). IP addresses only."""
    out: list[tuple[str, int]] = []
    for item in (p.strip() for p in raw.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise _bad(name, raw, f"{item!r} is not ip:port")
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise _bad(name, raw, f"{host!r} is not an IPv4 address") from None
        out.append((host, int(port)))
    if not out:
        raise _bad(name, raw, "no node given")
    if len(set(out)) != len(out):
        raise _bad(name, raw, "a node is listed twice")
    return tuple(out)


def load(env: dict[str, str] | None = None) -> DispatcherSettings:
    env = dict(os.environ) if env is None else env
    run_dir = Path(env.get("CALLCTL_RUN_DIR") or PROJECT_ROOT / "run").resolve()
    bind = env.get("CALLCTL_DISPATCHER_BIND") or "127.0.0.1"
    try:
        ipaddress.IPv4Address(bind)
    except ValueError:
        raise _bad("CALLCTL_DISPATCHER_BIND", bind, "not an IPv4 address") from None
    sip_bind = env.get("CALLCTL_SIP_BIND") or "127.0.0.1"
    local = f"{'127.0.0.1' if sip_bind == '0.0.0.0' else sip_bind}:" \
            f"{_port(env, 'CALLCTL_SIP_PORT', 5060)}"
    nodes = parse_nodes(env.get("CALLCTL_SIP_NODES") or local)
    ping = env.get("CALLCTL_DISPATCHER_PING") or "5"
    if not ping.isdigit() or not 1 <= int(ping) <= 300:
        raise _bad("CALLCTL_DISPATCHER_PING", ping, "seconds from 1 to 300")
    timeout = env.get("CALLCTL_DISPATCHER_TIMEOUT_MS") or "2000"
    if not timeout.isdigit() or not 200 <= int(timeout) <= 32000:
        raise _bad("CALLCTL_DISPATCHER_TIMEOUT_MS", timeout, "milliseconds from 200 to 32000")
    port = _port(env, "CALLCTL_DISPATCHER_PORT", 5080)
    if (bind, port) in nodes:
        raise ConfigError(f"CALLCTL_DISPATCHER_PORT has value '{port}': a node listens there")
    return DispatcherSettings(run_dir=run_dir, bind=bind, port=port, nodes=nodes,
                              ping_interval=int(ping), timeout_ms=int(timeout))


def modules_dir() -> str:
    for d in [*sorted(Path("/usr/lib").glob("*/kamailio/modules")),
              Path("/usr/lib/kamailio/modules")]:
        if (d / "dispatcher.so").exists():
            return str(d)
    raise StackError("Kamailio's dispatcher module is not installed: apt-get install kamailio")


def render(ds: DispatcherSettings) -> Path:
    """Write ``kamailio.cfg`` and ``dispatcher.list`` into ``<run>/kamailio``."""
    ds.dir.mkdir(parents=True, exist_ok=True)
    for d in (ds.pidfile.parent, ds.log.parent):
        d.mkdir(parents=True, exist_ok=True)
    dests = "\n".join(f"{SET_ID} {ds.uri(h, p)} 0 0 duid=node{i}"
                      for i, (h, p) in enumerate(ds.nodes, 1))
    subst = {
        "RUN": str(ds.run_dir),
        "BIND": ds.bind,
        "PORT": str(ds.port),
        "CHILDREN": str(ds.children),
        "MODULES": modules_dir(),
        "PING_INTERVAL": str(ds.ping_interval),
        "FR_TIMER": str(ds.timeout_ms),
        "PROBE_THRESHOLD": str(ds.probe_threshold),
        "DESTINATIONS": dests,
    }
    for name in ("kamailio.cfg", "dispatcher.list"):
        text = (CFG_DIR / name).read_text()
        for key, val in subst.items():
            text = text.replace(f"@{key}@", val)
        left = re.findall(r"@[A-Z_]+@", "\n".join(
            ln for ln in text.splitlines() if not ln.lstrip().startswith("#")))
        if left:
            raise StackError(f"kamailio/{name}: unknown placeholders {sorted(set(left))}")
        (ds.dir / name).write_text(text)
    return ds.dir / "kamailio.cfg"


def _kamailio() -> str:
    exe = shutil.which("kamailio")
    if not exe:
        raise StackError("kamailio is not installed: apt-get install --no-install-recommends "
                         "kamailio (or scripts/install.sh)")
    return exe


def check_config(ds: DispatcherSettings) -> None:
    cfg = render(ds)
    res = subprocess.run([_kamailio(), "-c", "-f", str(cfg), "-L", modules_dir()],
                         capture_output=True, text=True, timeout=20)
    if res.returncode != 0:
        raise StackError(f"kamailio config check failed:\n{res.stderr[-2000:]}")


def up(ds: DispatcherSettings, timeout: float = 10.0) -> list[str]:
    """Start Kamailio (unless ours already runs) and wait until its control socket answers."""
    if read_pid(ds.pidfile) is not None and ping(ds):
        return [f"dispatcher: already running on udp {ds.bind}:{ds.port}"]
    cfg = render(ds)
    spawn([_kamailio(), "-f", str(cfg), "-L", modules_dir(), "-DD", "-E", "-m", "32",
            "-M", "4", "-Y", str(ds.dir), "-w", str(ds.dir)], ds.log, ds.pidfile)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ping(ds):
            nodes = ", ".join(f"{h}:{p}" for h, p in ds.nodes)
            return [f"dispatcher: kamailio on udp {ds.bind}:{ds.port} -> nodes {nodes} "
                    f"(log {ds.log})"]
        if read_pid(ds.pidfile) is None:
            break
        time.sleep(0.1)
    raise StackError(f"kamailio did not start; see {ds.log}")


def down(ds: DispatcherSettings) -> list[str]:
    stopped = stop_pid(ds.pidfile)
    return [f"dispatcher: {'stopped' if stopped else 'not running (not started by us)'}"]


def kamcmd(ds: DispatcherSettings, *args: str, timeout: float = 5.0) -> str:
    exe = shutil.which("kamcmd")
    if not exe:
        raise StackError("kamcmd is not installed (package kamailio)")
    res = subprocess.run([exe, "-s", ds.ctl_socket, *args], capture_output=True, text=True,
                         timeout=timeout)
    if res.returncode != 0:
        raise StackError(f"kamcmd {' '.join(args)}: {res.stderr.strip() or res.stdout.strip()}")
    return res.stdout


def ping(ds: DispatcherSettings) -> bool:
    try:
        return "kamailio" in kamcmd(ds, "core.version", timeout=2.0).lower()
    except (StackError, subprocess.TimeoutExpired, OSError):
        return False


def destinations(ds: DispatcherSettings) -> dict[str, str]:
    """``{"sip:ip:port": flags}`` from ``dispatcher.list``: flags "AP" active (probed),
    "IP" inactive (probed), "TP" trying, "DX" disabled."""
    out: dict[str, str] = {}
    uri = None
    for line in kamcmd(ds, "dispatcher.list").splitlines():
        line = line.strip()
        if line.startswith("URI:"):
            uri = line.split(":", 1)[1].strip()
        elif line.startswith("FLAGS:") and uri is not None:
            out[uri] = line.split(":", 1)[1].strip()
            uri = None
    return out


class DispatcherStatus(TypedDict):
    """``callctl dispatcher status`` (``--json``: as is)."""

    pid: int | None
    listen: str
    nodes: dict[str, str]
    """Each node's SIP URI -> Kamailio's flags for it (``AP``: active, probing...)."""
    log: str


def status(ds: DispatcherSettings) -> DispatcherStatus:
    running = read_pid(ds.pidfile)
    dests: dict[str, str] = {}
    if running is not None:
        try:
            dests = destinations(ds)
        except (StackError, subprocess.TimeoutExpired):
            dests = {}
    return {"pid": running, "listen": f"udp:{ds.bind}:{ds.port}", "nodes": dests,
            "log": str(ds.log)}
