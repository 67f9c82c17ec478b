"""The Docker image's processes, run here without Docker (there is no engine on these
machines): the asterisk container's command (docker/asterisk-entrypoint.sh) and both
healthchecks, exactly as docker/Dockerfile names them, on the real Asterisk, Redis and
``callctl run``.

Ports: a private block ``7600 + 10 * CALLCTL_TEST_SLOT`` (+0 SIP, +1 ARI, +2 AMI, +3 the admin
API), RTP ``23000 + 200 * slot`` (200 ports), the run directory in the test's tmp dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from dockerfile import INSTRUCTIONS

from controller.config import PROJECT_ROOT

from integration.conftest import SLOT, TEST_ENV, Harness, until
from integration.runproc import RunProcess, clean_env

BASE = 7600 + 10 * SLOT
ENTRYPOINT = PROJECT_ROOT / "docker" / "asterisk-entrypoint.sh"


def healthcheck_argv(target: str) -> list[str]:
    """The HEALTHCHECK CMD of ``target`` in docker/Dockerfile, with the image's paths mapped
    to this checkout (``python`` is the image venv's: here, this test's interpreter)."""
    (check,) = [i for i in INSTRUCTIONS if i.stage == target and i.op == "HEALTHCHECK"]
    argv = [a.replace("/opt/callctl", str(PROJECT_ROOT)) for a in check.exec_form()]
    return [sys.executable if argv[0] == "python" else argv[0], *argv[1:]]


async def healthy(target: str, env: dict[str, str]) -> bool:
    proc = await asyncio.create_subprocess_exec(
        *healthcheck_argv(target), env=env, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    return await asyncio.wait_for(proc.wait(), 15) == 0


def asterisk_env(run: Path) -> dict[str, str]:
    return clean_env(
        CALLCTL_RUN_DIR=str(run), CALLCTL_APP=f"callctl-docker{SLOT}",
        CALLCTL_SIP_PORT=str(BASE), CALLCTL_ARI_URL=f"http://127.0.0.1:{BASE + 1}",
        CALLCTL_AMI_PORT=str(BASE + 2), CALLCTL_RTP_START=str(23000 + 200 * SLOT),
        CALLCTL_RTP_END=str(23199 + 200 * SLOT), CALLCTL_NODE=f"docker{SLOT}",
    )


def start_entrypoint(env: dict[str, str], out: Path) -> subprocess.Popen[bytes]:
    with open(out, "wb") as fh:
        return subprocess.Popen([str(ENTRYPOINT)], env=env, stdin=subprocess.DEVNULL,
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def program_of(pid: int) -> tuple[str, list[bytes]]:
    """The executable's name and the argv of process ``pid``."""
    return (Path(f"/proc/{pid}/exe").resolve().name,
            Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"))


async def test_asterisk_entrypoint_is_asterisk_in_the_foreground_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    env = asterisk_env(tmp_path / "run")
    out = tmp_path / "asterisk.out"
    proc = start_entrypoint(env, out)
    try:
        await until(lambda: healthy("asterisk", env), 45, "the asterisk healthcheck")
        # The shell has replaced itself with Asterisk: the process Docker starts (PID 1 under
        # `docker run`, docker-init's child with `init: true`) is Asterisk, in the foreground.
        exe, argv = program_of(proc.pid)
        assert exe == "asterisk", (exe, argv)
        assert b"-f" in argv and proc.poll() is None
        assert (tmp_path / "run" / "etc" / "asterisk.conf").is_file()
        # docker stop: SIGTERM to that process alone; Asterisk ends by itself, cleanly.
        os.kill(proc.pid, signal.SIGTERM)
        rc = await asyncio.to_thread(proc.wait, 15)
        assert rc == 0, out.read_text(errors="replace")[-2000:]
        assert "Asterisk cleanly ending" in out.read_text(errors="replace")
        assert not await healthy("asterisk", env)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


async def test_asterisk_healthcheck_fails_before_the_config_is_rendered(tmp_path: Path) -> None:
    # Without the project's asterisk.conf, `asterisk -rx` would ask the system's default
    # socket: the check says unhealthy instead.
    assert not await healthy("asterisk", asterisk_env(tmp_path / "run"))


async def test_controller_healthcheck_follows_callctl_run(
    harness: Harness, tmp_path: Path,
) -> None:
    env = clean_env(**TEST_ENV, CALLCTL_REDIS_PREFIX=harness.prefix,
                    CALLCTL_CONTROLLER_ID=f"docker-health{SLOT}", CALLCTL_ADMIN="on",
                    CALLCTL_ADMIN_PORT=str(BASE + 3), CALLCTL_LOG_FORMAT="json")
    ctl = RunProcess(env, tmp_path / "controller.log")
    assert not await healthy("controller", env)  # nothing listens yet
    ctl.start()
    try:
        await until(lambda: healthy("controller", env), 30, "the controller healthcheck")
        assert await asyncio.to_thread(ctl.term) == 0
        assert not await healthy("controller", env)
    finally:
        ctl.stop()


async def test_controller_healthcheck_without_admin_api_is_unhealthy() -> None:
    env = clean_env(**TEST_ENV, CALLCTL_ADMIN="off", CALLCTL_ADMIN_PORT=str(BASE + 3))
    assert not await healthy("controller", env)
