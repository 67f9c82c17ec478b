"""`callctl stack up|down|status`: Asterisk and Redis as the project's own processes.

The config in ``asterisk-conf/`` and ``dialplan/`` is rendered into ``<run>/etc`` (placeholders
``@NAME@`` replaced, secrets written to ``*-secrets.conf`` files with mode 0600), then
``asterisk -C <run>/etc/asterisk.conf -f`` and ``redis-server <run>/etc/redis.conf`` are started
detached, and we wait until ARI and Redis answer. The same files are what the Docker image and
CI run. ``redis.conf`` (mode 0600) holds the Redis password (``requirepass``): it is never on a
command line, where ``ps`` would show it.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict
from urllib.parse import urlsplit

from controller.config import Settings, redis_safe_url
from controller.tools.stack.conf import Paths, render
from controller.tools.stack.probes import ami_ping, ari_ping, redis_ping, redis_probe
from controller.tools.stack.procs import (
    StackError,
    asterisk_argv,
    asterisk_cli,
    read_pid,
    spawn,
    stop_pid,
)

__all__ = ["Paths", "Progress", "StackError", "asterisk_argv", "asterisk_cli", "down",
           "render", "status", "up"]


Progress = Callable[[str, float, bool], None]
"""``progress(what, elapsed_s, done)``: called when a wait starts (0 s), about every second
while it lasts, and once when ``what`` answered (``done``)."""


def _wait(pred: Callable[[], bool], timeout: float, what: str, log: Path,
          progress: Progress | None = None, interval: float = 0.1) -> None:
    t0 = time.monotonic()
    deadline = t0 + timeout
    told = -1
    while time.monotonic() < deadline:
        if pred():
            if progress is not None:
                progress(what, time.monotonic() - t0, True)
            return
        elapsed = time.monotonic() - t0
        if progress is not None and int(elapsed) > told:
            told = int(elapsed)
            progress(what, elapsed, False)
        time.sleep(interval)
    raise StackError(f"{what} did not answer within {timeout:.0f} s; see {log}")


def _is_local(url: str) -> bool:
    return urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


def up(settings: Settings, *, asterisk: bool = True, redis: bool = True,
       progress: Progress | None = None) -> list[str]:
    """Start what is not running and wait until it answers (Redis, Asterisk's ARI, then its
    AMI; ``progress`` hears what is waited for). Returns status lines."""
    p = render(settings)
    lines: list[str] = []
    if redis:
        where = redis_safe_url(settings.redis_url)
        probe = redis_probe(settings.redis_url)
        if probe == "ok":
            lines.append(f"redis: already answering at {where}")
        elif probe == "auth":
            raise StackError(
                f"Redis at {where} answers but refuses our password (REDIS_PASSWORD in "
                f"{settings.secrets_path}, CALLCTL_REDIS_PASSWORD, or the one in REDIS_URL): "
                "a Redis started before it had one (`callctl stack down` stops ours), or "
                "another one on that port (Debian's: `systemctl disable --now redis-server`); "
                "or point REDIS_URL at another port")
        elif not _is_local(settings.redis_url):
            raise StackError(f"Redis at {where} does not answer, and it is not "
                             "on this machine: start it there or set REDIS_URL")
        elif urlsplit(settings.redis_url).scheme not in ("redis", "rediss"):
            raise StackError(f"REDIS_URL {where} is not a redis:// URL: no Redis to start")
        else:
            exe = shutil.which("redis-server")
            if not exe:
                raise StackError("redis-server is not installed: run scripts/install.sh")
            port = urlsplit(settings.redis_url).port or 6379
            log = p.log / "redis.log"
            spawn([exe, str(p.etc / "redis.conf")], log, p.pids / "redis.pid")
            _wait(lambda: redis_ping(settings.redis_url), 10, f"Redis at 127.0.0.1:{port}", log,
                  progress)
            lines.append(f"redis: started on 127.0.0.1:{port} with a password (config "
                         f"{p.etc / 'redis.conf'}, log {log})")
    if asterisk:
        ok, detail = ari_ping(settings)
        want = settings.asterisk_version
        if ok and want and not detail.startswith(f"{want}."):
            raise StackError(f"Asterisk {detail} is answering at {settings.ari_url}, not the "
                             f"{want}.x asked for (CALLCTL_ASTERISK): `callctl stack down` first")
        if ok:
            # The config was just re-rendered from the templates: make the running Asterisk
            # use it (dialplan and PJSIP; ARI/HTTP are left alone so live sessions survive).
            for cmd in ("dialplan reload", "module reload res_pjsip.so"):
                try:
                    asterisk_cli(settings, cmd)
                except (OSError, subprocess.SubprocessError):  # best effort: keeps the old config
                    pass
            lines.append(f"asterisk: already answering at {settings.ari_url} ({detail}); "
                         "dialplan and PJSIP config reloaded")
        else:
            argv = asterisk_argv(settings, "-C", str(p.asterisk_conf), "-f", "-n")
            if read_pid(p.pids / "asterisk.pid") is None:
                log = p.log / "asterisk.out"
                spawn(argv, log, p.pids / "asterisk.pid")
            _wait(lambda: ari_ping(settings)[0], 45, f"Asterisk ARI at {settings.ari_url}",
                  p.log / "asterisk.out", progress)
            _wait(lambda: ami_ping(settings.ami_host, settings.ami_port), 15,
                  f"Asterisk AMI at {settings.ami_host}:{settings.ami_port}",
                  p.log / "asterisk.out", progress)
            where = f" from {settings.asterisk_root}" if settings.asterisk_root else ""
            lines.append(f"asterisk: {ari_ping(settings)[1]}{where} ARI at {settings.ari_url}, "
                         f"SIP udp {settings.sip_bind}:{settings.sip_port} "
                         f"(logs {p.log}/messages, {p.log}/asterisk.out)")
    lines.append(f"secrets: {settings.secrets_path} (ARI/AMI/Redis passwords, admin token, "
                 "softphone passwords)")
    return lines


def down(settings: Settings) -> list[str]:
    p = Paths(settings.run_dir)
    lines = []
    for name in ("asterisk", "redis"):
        stopped = stop_pid(p.pids / f"{name}.pid")
        lines.append(f"{name}: {'stopped' if stopped else 'not running (not started by us)'}")
    return lines


class AsteriskStatus(TypedDict):
    pid: int | None
    ari: bool
    detail: str
    """Its version, or why ARI did not answer."""
    url: str
    root: str | None
    """The Debian root it runs in (CALLCTL_ASTERISK=22), None: the host's."""


class RedisStatus(TypedDict):
    pid: int | None
    ping: bool
    url: str


class StackStatus(TypedDict):
    """``callctl stack status`` (``--json``: as is)."""

    asterisk: AsteriskStatus
    redis: RedisStatus
    logs: str


def status(settings: Settings) -> StackStatus:
    p = Paths(settings.run_dir)
    ari_ok, ari_detail = ari_ping(settings)
    return {
        "asterisk": {"pid": read_pid(p.pids / "asterisk.pid"), "ari": ari_ok,
                     "detail": ari_detail, "url": settings.ari_url,
                     "root": str(settings.asterisk_root) if settings.asterisk_root else None},
        "redis": {"pid": read_pid(p.pids / "redis.pid"),
                  "ping": redis_ping(settings.redis_url),
                  "url": redis_safe_url(settings.redis_url)},
        "logs": str(p.log),
    }
