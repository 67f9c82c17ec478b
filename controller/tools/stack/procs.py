"""The stack's processes: the Asterisk command line (or its chroot), starting detached daemons,
their pid files, stopping them, Asterisk's CLI."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from controller.config import PROJECT_ROOT, Settings
from controller.tools.stack.conf import Paths


class StackError(RuntimeError):
    """A stack operation failed; the message says what to do."""


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


def read_pid(path: Path) -> int | None:
    """The pid in the pid file ``path`` while that process lives, else None."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def spawn(argv: list[str], log: Path, pidfile: Path) -> int:
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


def stop_pid(pidfile: Path, timeout: float = 10.0) -> bool:
    """SIGTERM the pid file's process (SIGKILL after ``timeout`` s) and remove the file; False
    when nothing of ours was running."""
    pid = read_pid(pidfile)
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


def asterisk_cli(settings: Settings, command: str, timeout: float = 10.0) -> str:
    """Run an Asterisk CLI command on our instance (``asterisk -rx``)."""
    p = Paths(settings.run_dir)
    res = subprocess.run(asterisk_argv(settings, "-C", str(p.asterisk_conf), "-rx", command),
                         capture_output=True, text=True, timeout=timeout)
    return res.stdout
