"""Issue 13: the stack's Redis wants its password (item 16); bad data in a user's Redis record
is skipped, never the end of a call (item 7). Real Asterisk, Redis and SIPp phones."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from controller.adapters.ari.client import AriClient
from controller.config import PROJECT_ROOT, Settings
from controller.tools import stack
from controller.tools.stack import probes, procs

from integration.conftest import TEST_ENV, Harness, PhoneBank, until

FLOW = """
settings:
  timezone: UTC
users:
  alice: {endpoint: agent1, alternate: "+15550188"}
departments:
  sales: {strategy: serial, members: [alice], ring_time: 5}
flows:
  main:
    dids: ["+15550700"]
    entry: sales
    nodes:
      sales: {type: department, department: sales, fallback: bye}
      bye: {type: hangup}
"""


async def _nothing_live(h: Harness, ari: AriClient) -> bool:
    chans = await ari.list_channels() or []
    live = await h.redis.zcard(f"{h.prefix}calls:live")
    return not chans and live == 0


async def _callctl(*args: str) -> tuple[int, str]:
    """`callctl ARGS` with the test slot's environment: (exit code, stdout + stderr)."""
    env = {**os.environ, **TEST_ENV, "PYTHONPATH": str(PROJECT_ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller", *args, env=env, cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def _cmdline(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return raw.rstrip(b"\0").decode().split("\0")


# ---------------------------------------------------------------------- item 16: the password

async def test_the_stacks_redis_refuses_a_client_without_the_password_and_the_controller_works(
        test_settings: Settings, harness: Harness, phones: PhoneBank, ari: AriClient,
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = urlsplit(test_settings.redis_url)
    password = unquote(url.password or "")
    assert len(password) >= 24  # generated into the run dir's secrets.env
    port = url.port

    # a local user without the password can neither read nor rewrite the live flows
    assert probes.redis_probe(f"redis://127.0.0.1:{port}/0") == "auth"
    assert probes.redis_probe(f"redis://:wrong@127.0.0.1:{port}/0") == "auth"
    intruder = aioredis.Redis(port=port, decode_responses=True, socket_timeout=2)
    try:
        for attempt in (intruder.get(f"{harness.prefix}flows:live"),
                        intruder.set(f"{harness.prefix}flows:live", "999")):
            with pytest.raises(RedisError, match=r"(?i)auth"):
                await attempt
    finally:
        await intruder.aclose()

    # the password is in a 0600 config file, never on redis-server's command line
    paths = stack.Paths(test_settings.run_dir)
    conf = paths.etc / "redis.conf"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert "requirepass" in conf.read_text()
    pid = procs.read_pid(paths.pids / "redis.pid")
    assert pid is not None, "the test stack's Redis was not started by `callctl stack`"
    assert password not in " ".join(_cmdline(pid))  # what `ps` shows
    assert (await harness.redis.info("server"))["config_file"] == str(conf)

    # the controller, which has it, works: a real call is answered
    await phones.start("agent1", "answer", ring_ms=200)
    await harness.publish(FLOW, tmp_path)
    with caplog.at_level(logging.DEBUG):
        await harness.start()
        result = await harness.call("+15550700", hold_ms=1000)
        rec = await harness.record()
        await until(lambda: _nothing_live(harness, ari), 10, "nothing left")
        await harness.stop()
    assert result.final_status() == 200, result.trace[-2000:]
    assert rec["result"] == "completed" and rec["answered_by"] == "alice", json.dumps(rec)
    assert password not in caplog.text

    # and neither the status commands nor their errors show the password
    for args in (("stack", "status", "--json"), ("stack", "status"), ("status", "--json")):
        _, out = await _callctl(*args)
        assert password not in out, (args, out)
        assert f"127.0.0.1:{port}" in out, (args, out)
    _, out = await _callctl("stack", "status", "--json")
    assert json.loads(out)["redis"]["ping"] is True, out


# ------------------------------------------------------------------- item 7: bad stored data

async def test_a_user_with_corrupt_overrides_is_still_rung_and_the_call_answered(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    agent = await phones.start("agent1", "answer", ring_ms=200)
    await harness.publish(FLOW, tmp_path)
    key = f"{harness.prefix}user:alice"
    await harness.redis.hset(key, mapping={  # written by something else than callctl
        "availability": '[{"days": ["mon"], "start": "09:00"',  # truncated JSON
        "receive_calls": "yes", "alternate": "call me maybe", "timezone": "Mars/Base"})
    with caplog.at_level(logging.WARNING, "callctl.store"):
        await harness.start()
        for _ in range(2):
            result = await harness.call("+15550700", hold_ms=500)
            rec = await harness.record()
            assert result.final_status() == 200, result.trace[-2000:]
            # the published values applied: alice receives calls, at any time
            assert rec["result"] == "completed", json.dumps(rec, indent=1)
            assert rec["answered_by"] == "alice", json.dumps(rec, indent=1)
            await until(lambda: _nothing_live(harness, ari), 10, "nothing left")
    assert agent.invites() == 2
    bad = [r.getMessage() for r in caplog.records if key in r.getMessage()]
    # each bad value logged once (not once per call), naming the key, field and value
    fields = sorted(m.split(" field ", 1)[1].split(" ", 1)[0] for m in bad)
    assert fields == ["alternate", "availability", "receive_calls", "timezone"], bad
    assert any("'call me maybe'" in m for m in bad), bad


async def test_a_controller_given_the_wrong_redis_password_says_so_not_that_redis_is_down(
) -> None:
    from redisproc import RedisServer

    from controller.adapters.redis import RedisStore
    from controller.config import StartupError
    from controller.shell.runtime import Controller

    server = RedisServer()
    server.start()
    try:
        wrong = f"redis://:not-{server.password}@127.0.0.1:{server.port}/0"
        none = f"redis://127.0.0.1:{server.port}/0"
        for url, want in ((server.url, "ok"), (wrong, "auth"), (none, "auth")):
            store = RedisStore(url, "x:")
            try:
                assert await store.probe() == want, url.replace(server.password, "***")
            finally:
                await store.close()
        ctl = Controller(Settings(redis_url=wrong, run_dir=PROJECT_ROOT / "run" / "unused"))
        with pytest.raises(StartupError, match="refuses our password") as err:
            await ctl.check()
        assert server.password not in str(err.value)
        await ctl.store.close()
    finally:
        server.cleanup()
