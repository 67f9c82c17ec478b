"""Issue 14 item 6 against the real stack: `callctl asterisk` reaches our Asterisk without
knowing `-C run/etc/asterisk.conf`, and `callctl status` reports a down AMI once, cleanly."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

from controller.config import PROJECT_ROOT, Settings

from integration.conftest import TEST_ENV


async def callctl(*args: str, **env: str) -> tuple[int, str, str]:
    """`callctl ARGS` as a process with the slot's environment (plus ``env``)."""
    full = {**os.environ, **TEST_ENV, "PYTHONPATH": str(PROJECT_ROOT), **env}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller", *args, env=full, cwd=PROJECT_ROOT,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_asterisk_rx_runs_one_cli_command_on_our_asterisk(
        test_settings: Settings, tmp_path: Path) -> None:
    rc, out, err = await callctl("asterisk", "-rx", "core show version")
    assert rc == 0, err
    assert out.startswith("Asterisk 16.") or out.startswith("Asterisk 22."), out
    # the command is one argument to asterisk: nothing goes through a shell
    marker = tmp_path / "not-created"
    rc, out, _ = await callctl("asterisk", "-rx", f"core show version; touch {marker}")
    assert not marker.exists()
    rc, out, _ = await callctl("asterisk", "-x", "core show uptime")  # -x implies -r
    assert rc == 0 and "System uptime" in out, out


async def test_given_ami_down_then_status_says_so_once_without_panoramisk_noise(
        test_settings: Settings) -> None:
    port = closed_port()
    rc, out, err = await callctl("status", CALLCTL_AMI_PORT=str(port))
    assert rc == 3  # not everything answers (and no controller holds the app here)
    ami = [line for line in out.splitlines() if line.startswith("ami:")]
    assert len(ami) == 1 and ami[0].startswith("ami:        DOWN"), out
    assert str(port) in ami[0]
    assert "asterisk:   up" in out and "redis:      up" in out, out
    assert "Not able to" not in err and "Not able to" not in out, err
    assert err.strip() == "", err
