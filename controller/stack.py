"""`callctl stack up|down|status`: Asterisk and Redis as the project's own processes.

The config in ``asterisk-conf/`` and ``dialplan/`` is rendered into ``<run>/etc`` (placeholders
``@NAME@`` replaced, secrets written to ``*-secrets.conf`` files with mode 0600), then
``asterisk -C <run>/etc/asterisk.conf -f`` and ``redis-server <run>/etc/redis.conf`` are started
detached, and we wait until ARI and Redis answer. The same files are what the Docker image and
CI run. ``redis.conf`` (mode 0600) holds the Redis password (``requirepass``): it is never on a
command line, where ``ps`` would show it.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from controller.config import PROJECT_ROOT, Settings, ensure_secrets, redis_safe_url

CONF_DIR = PROJECT_ROOT / "asterisk-conf"
DIALPLAN_DIR = PROJECT_ROOT / "dialplan"
PROMPTS_DIR = PROJECT_ROOT / "prompts"


class StackError(RuntimeError):
    """A stack operation failed; the message says what to do."""


@dataclass(frozen=True)
class Paths:
    run: Path

    @property
    def etc(self) -> Path:
        return self.run / "etc"

    @property
    def log(self) -> Path:
        return self.run / "log"

    @property
    def spool(self) -> Path:
        return self.run / "spool"

    @property
    def pids(self) -> Path:
        return self.run / "run"

    @property
    def redis_dir(self) -> Path:
        return self.run / "redis"

    @property
    def asterisk_conf(self) -> Path:
        return self.etc / "asterisk.conf"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def asterisk_moddir(settings: Settings) -> str:
    """Where the Asterisk in use keeps its modules (Debian moved them to the multiarch dir)."""
    root = settings.asterisk_root or Path("/")
    for d in [root / "usr/lib/asterisk/modules", *sorted(root.glob("usr/lib/*/asterisk/modules"))]:
        if d.is_dir():
            return f"/{d.relative_to(root)}"
    return "/usr/lib/asterisk/modules"


# In a private mount namespace (gone with its last process, so nothing is left mounted on the
# host): /proc, /dev and the project (and run dir) at the same paths inside the root, then chroot.
_CHROOT_SH = """set -e
r=$1; shift; n=$1; shift
mount --bind /proc "$r/proc"
mount --bind /dev "$r/dev"
i=0
while [ "$i" -lt "$n" ]; do
    mkdir -p "$r$1"; mount --bind "$1" "$r$1"; shift; i=$((i + 1))
done
exec chroot "$r" "$@"
"""


def asterisk_argv(settings: Settings, *args: str) -> list[str]:
    """The command line that runs the configured Asterisk binary with ``args``: the host's
    ``asterisk``, or ``/usr/sbin/asterisk`` chrooted into ``settings.asterisk_root``."""
    root = settings.asterisk_root
    if root is None:
        exe = shutil.which("asterisk")
        if not exe:
            raise StackError("asterisk is not installed: run scripts/install.sh")
        return [exe, *args]
    if not (root / "usr/sbin/asterisk").exists():
        raise StackError(f"no Asterisk in {root}: run scripts/install-ast22.sh")
    for tool in ("unshare", "chroot", "mount"):
        if not shutil.which(tool):
            raise StackError(f"{tool} is needed to run Asterisk from {root}")
    binds = [str(PROJECT_ROOT)]
    run = settings.run_dir.resolve()
    if not run.is_relative_to(PROJECT_ROOT):
        binds.append(str(run))
    return ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
            _CHROOT_SH, "sh", str(root), str(len(binds)), *binds, "/usr/sbin/asterisk", *args]


def render(settings: Settings) -> Paths:
    """Render the Asterisk config set into the run directory. Idempotent."""
    p = Paths(settings.run_dir)
    for d in (p.etc, p.log, p.spool / "recording", p.spool / "voicemail", p.pids,
              p.run / "lib", p.run / "cache", p.redis_dir):
        d.mkdir(parents=True, exist_ok=True)
    sec = ensure_secrets(settings.secrets_path)
    subst = {
        "RUN": str(p.run),
        "APP": settings.app,
        "ARI_PORT": str(settings.ari_port),
        "AMI_PORT": str(settings.ami_port),
        "HTTP_BIND": settings.http_bind,
        "SIP_BIND": settings.sip_bind,
        "SIP_PORT": str(settings.sip_port),
        "CARRIER_MATCH": settings.carrier_match,
        "PSTN_HOST": settings.pstn_host,
        "PSTN_PORT": str(settings.pstn_port),
        **{f"AGENT{n}_PORT": str(settings.agent_port_base + n) for n in range(1, 9)},
        "RTP_START": str(settings.rtp_start),
        "RTP_END": str(settings.rtp_end),
        "PROMPTS": str(PROMPTS_DIR),
        "SPOOL": str(p.spool),
        "MODDIR": asterisk_moddir(settings),
        "NODE": settings.node_name,
    }
    sources = sorted(CONF_DIR.glob("*.conf")) + sorted(DIALPLAN_DIR.glob("*.conf"))
    for src in sources:
        text = src.read_text()
        for key, val in subst.items():
            text = text.replace(f"@{key}@", val)
        (p.etc / src.name).write_text(text)
    _write_private(p.etc / "ari-secrets.conf",
                   f"[{settings.ari_user}]\ntype = user\nread_only = no\n"
                   f"password_format = plain\npassword = {sec['ARI_PASSWORD']}\n")
    _write_private(p.etc / "manager-secrets.conf",
                   f"[{settings.ami_user}]\nsecret = {sec['AMI_SECRET']}\n"
                   "deny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\n"
                   "read = system,call,dtmf,reporting\nwrite = system,call,command,originate\n")
    phones = []
    for n in (1, 2, 3):
        phones.append(
            f"[phone{n}](agent-endpoint)\naors = phone{n}\nauth = phone{n}\n\n"
            f"[phone{n}]\ntype = aor\nmax_contacts = 1\nremove_existing = yes\n\n"
            f"[phone{n}]\ntype = auth\nauth_type = userpass\nusername = phone{n}\n"
            f"password = {sec[f'PHONE{n}_PASSWORD']}\n")
    _write_private(p.etc / "pjsip-secrets.conf", "\n".join(phones))
    url = urlsplit(settings.redis_url)
    if url.scheme in ("redis", "rediss"):
        user, password = redis_credentials(settings.redis_url)
        _write_private(p.etc / "redis.conf", redis_config(
            url.port or 6379, p.redis_dir, password, user=user, appendonly=True))
    return p


def _conf_str(value: str) -> str:
    """A redis.conf argument: double-quoted, anything but printable ASCII as \\xHH."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
    return '"' + "".join(out) + '"'


def redis_config(port: int, workdir: Path, password: str | None, *, user: str | None = None,
                 appendonly: bool = False, extra: tuple[str, ...] = ()) -> str:
    """A redis.conf for a Redis of ours on 127.0.0.1:``port``: ``requirepass`` (and, for a
    ``user`` other than ``default``, an ACL user with the same password) when ``password``
    is set. Write it with mode 0600: it holds the password."""
    lines = ["# Generated by callctl (mode 0600: it holds the Redis password). Re-rendered at",
             "# every `callctl stack up`: do not edit.",
             f"port {port}", "bind 127.0.0.1", "protected-mode yes",
             f"dir {_conf_str(str(workdir))}", 'save ""',
             f"appendonly {'yes' if appendonly else 'no'}", 'logfile ""']
    if password:
        lines.append(f"requirepass {_conf_str(password)}")
        if user and user != "default":
            lines.append(f"user {_conf_str(user)} on {_conf_str('>' + password)} "
                         "~* &* +@all")
    return "\n".join([*lines, *extra, ""])


def redis_credentials(url: str) -> tuple[str | None, str | None]:
    """(username, password) of a redis:// URL (None: not given)."""
    parts = urlsplit(url)
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return user, password


# --------------------------------------------------------------------------- process helpers

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our exited child) is not alive.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def _spawn(argv: list[str], log: Path, pidfile: Path) -> int:
    """Start ``argv`` detached (own session, reparented to init) and return its pid.

    A shell launches it in the background and exits at once, so no Popen object of ours
    outlives the call: the daemon is not our child and never becomes our zombie.
    """
    with open(log, "ab") as out:
        script = '"$@" </dev/null >>"$CALLCTL_SPAWN_LOG" 2>&1 & echo $!'
        done = subprocess.run(["/bin/sh", "-c", script, "sh", *argv],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=out,
                              start_new_session=True, close_fds=True, check=True,
                              env={**os.environ, "CALLCTL_SPAWN_LOG": str(log)})
    pid = int(done.stdout.decode().strip())
    pidfile.write_text(f"{pid}\n")
    return pid


def _stop_pid(pidfile: Path, timeout: float = 10.0) -> bool:
    pid = _read_pid(pidfile)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.05)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    return True


# --------------------------------------------------------------------------- readiness probes

def redis_probe(url: str, timeout: float = 0.5) -> str:
    """``"ok"`` (PONG with the URL's credentials), ``"auth"`` (answers but refuses them or
    wants others) or ``"down"``. Sentinel URLs (several hosts): ``"down"`` (not probed)."""
    import redis
    from redis.exceptions import (
        AuthenticationError,
        AuthenticationWrongNumberOfArgsError,
        RedisError,
        ResponseError,
    )

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # redis+sentinel://h1:p1,h2:p2/...: not a server we start or probe
        return "down"
    user, password = redis_credentials(url)
    # RESP2: a plain AUTH, which a Redis without a password refuses (an older Redis of ours,
    # from before requirepass: `stack up` must say so); RESP3's HELLO would accept any
    client = redis.Redis(host=parts.hostname or "127.0.0.1", port=port or 6379,
                         username=user or None, password=password or None, protocol=2,
                         socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return "ok" if client.ping() else "down"
    # refused credentials, or none given where some are wanted (NOAUTH), or ours given to a
    # Redis without a password
    except (AuthenticationError, AuthenticationWrongNumberOfArgsError):
        return "auth"
    except ResponseError as e:
        return "auth" if "auth" in str(e).lower() else "down"
    except (RedisError, OSError):  # nothing there, or not Redis
        return "down"
    finally:
        client.close()


def redis_ping(url: str, timeout: float = 0.5) -> bool:
    return redis_probe(url, timeout) == "ok"


def ari_ping(settings: Settings, timeout: float = 1.0) -> tuple[bool, str]:
    """(ok, detail). Detail is an Asterisk version or the reason it failed."""
    req = urllib.request.Request(f"{settings.ari_url}/ari/asterisk/info")
    token = base64.b64encode(f"{settings.ari_user}:{settings.ari_password}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            import json

            info = json.loads(resp.read() or b"{}")
            return True, info.get("system", {}).get("version", "?")
    except urllib.error.HTTPError as e:
        return False, f"HTTP {e.code}" + (" (wrong ARI credentials?)" if e.code == 401 else "")
    except (OSError, ValueError) as e:
        return False, str(getattr(e, "reason", e))


def ami_ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when an Asterisk manager interface greets on ``host:port`` (no login)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            return s.recv(64).startswith(b"Asterisk Call Manager")
    except OSError:
        return False


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
            _spawn([exe, str(p.etc / "redis.conf")], log, p.pids / "redis.pid")
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
            if _read_pid(p.pids / "asterisk.pid") is None:
                log = p.log / "asterisk.out"
                _spawn(argv, log, p.pids / "asterisk.pid")
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
        stopped = _stop_pid(p.pids / f"{name}.pid")
        lines.append(f"{name}: {'stopped' if stopped else 'not running (not started by us)'}")
    return lines


def asterisk_cli(settings: Settings, command: str, timeout: float = 10.0) -> str:
    """Run an Asterisk CLI command on our instance (``asterisk -rx``)."""
    p = Paths(settings.run_dir)
    res = subprocess.run(asterisk_argv(settings, "-C", str(p.asterisk_conf), "-rx", command),
                         capture_output=True, text=True, timeout=timeout)
    return res.stdout


def status(settings: Settings) -> dict[str, object]:
    p = Paths(settings.run_dir)
    ari_ok, ari_detail = ari_ping(settings)
    return {
        "asterisk": {"pid": _read_pid(p.pids / "asterisk.pid"), "ari": ari_ok,
                     "detail": ari_detail, "url": settings.ari_url,
                     "root": str(settings.asterisk_root) if settings.asterisk_root else None},
        "redis": {"pid": _read_pid(p.pids / "redis.pid"),
                  "ping": redis_ping(settings.redis_url),
                  "url": redis_safe_url(settings.redis_url)},
        "logs": str(p.log),
    }
