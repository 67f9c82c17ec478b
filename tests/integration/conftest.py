"""Real-stack fixtures: Asterisk + Redis on test ports, SIPp phones, an in-process controller.

The test stack uses its own run directory and ports (SIP 5160, ARI 8188, AMI 5138, Redis
6479, phones 6071.., shifted by CALLCTL_TEST_SLOT) so it can run beside a developer's product
stack and beside other test runs. Each test gets its own Redis key prefix
(deleted afterwards) and its own controller; phones are SIPp UAS processes.
"""

from __future__ import annotations

import asyncio
import os
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from controller.adapters.ari.client import AriClient
from controller.adapters.redis import flowstore as publish
from controller.config import PROJECT_ROOT, Settings, load_settings
from controller.core.flows import loader
from controller.shell.runtime import Controller
from controller.tools import stack
from controller.tools.app import build_controller

from sippctl import Phone, place_call

# CALLCTL_TEST_SLOT=N (0..9) shifts every port and the run directory, so several test runs
# (developers, parallel workers) can share one machine without touching each other.
SLOT = int(os.environ.get("CALLCTL_TEST_SLOT", "0"))
SIP_PORT = 5160 + 10 * SLOT
PHONE_BASE = 6070 + 100 * SLOT
TEST_ENV = {
    "CALLCTL_RUN_DIR": str(PROJECT_ROOT / "run" / (f"test{SLOT}" if SLOT else "test")),
    "CALLCTL_APP": f"callctl-test{SLOT}",
    "CALLCTL_SIP_PORT": str(SIP_PORT),
    "CALLCTL_ARI_URL": f"http://127.0.0.1:{8188 + 10 * SLOT}",
    "CALLCTL_AMI_PORT": str(5138 + 10 * SLOT),
    "REDIS_URL": f"redis://127.0.0.1:{6479 + 10 * SLOT}/0",
    "CALLCTL_RTP_START": str(36000 + 2000 * SLOT),
    "CALLCTL_RTP_END": str(37998 + 2000 * SLOT),
    "CALLCTL_AGENT_PORT_BASE": str(PHONE_BASE),
    "CALLCTL_PSTN_PORT": str(PHONE_BASE + 20),
}
PHONE_PORTS = {f"agent{n}": PHONE_BASE + n for n in range(1, 9)} | {"pstn": PHONE_BASE + 20}
STALE_QUALIFY_S = 1.0
"""After a phone starts, how long a qualify sent before it started may still fail (see
PhoneBank.wait_status)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


async def until(pred: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0,
                what: str = "condition") -> None:
    """Poll ``pred`` until true, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        res = pred()
        if asyncio.iscoroutine(res) or isinstance(res, Awaitable):
            res = await res  # type: ignore[misc]
        if res:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture(scope="session")
def test_settings() -> Iterator[Settings]:
    env = {**os.environ, **TEST_ENV}
    settings = load_settings(env, generate=True)
    started_here = stack.status(settings)["asterisk"]["pid"] is None
    for line in stack.up(settings):
        print(line)
    # Asterisk resolves our per-test Stasis app from the dialplan; confirm it is the test one.
    yield settings
    if started_here and not os.environ.get("CALLCTL_KEEP_STACK"):
        stack.down(settings)


@pytest.fixture
async def ari(test_settings: Settings) -> AsyncIterator[AriClient]:
    client = AriClient(test_settings.ari_url, test_settings.ari_user,
                       test_settings.ari_password, test_settings.app)
    yield client
    await client.close()


class PhoneBank:
    """SIPp phones by name; started on demand, each waited on until Asterisk can reach it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.phones: dict[str, Phone] = {}

    async def start(self, name: str, behaviour: str = "answer", **kw: int) -> Phone:
        ph = self.phones.get(name)
        if ph is None:
            ph = Phone(name, PHONE_PORTS[name], behaviour, **kw)
            self.phones[name] = ph
            await asyncio.to_thread(ph.start)
        else:
            await asyncio.to_thread(ph.restart, behaviour, **kw)
        if name != "pstn":
            await self.wait_status(name, "Avail", since=time.monotonic())
        return ph

    async def stop(self, name: str) -> None:
        ph = self.phones.get(name)
        if ph is not None:
            ph.stop()
        if name != "pstn":
            await self.wait_status(name, "Unavail")

    async def wait_status(self, endpoint: str, want: str, since: float | None = None) -> None:
        """Wait until Asterisk's qualify sees ``endpoint``'s contact as ``want``.

        ``since`` (monotonic time the phone started listening): an OPTIONS Asterisk sent to the
        dead port just before (retransmitted at +0.5 s and +1.5 s, given up after
        qualify_timeout = 2 s) can still fail up to ~0.5 s after the start and mark the contact
        Unavail under a call. Measured: ~15 % of starts flip 0.2-0.4 s after an Avail was
        seen. So an Avail only counts once that window is over (STALE_QUALIFY_S)."""
        async def ok() -> bool:
            if since is not None and time.monotonic() < since + STALE_QUALIFY_S:
                return False
            await asyncio.to_thread(stack.asterisk_cli, self.settings, f"pjsip qualify {endpoint}")
            out = await asyncio.to_thread(stack.asterisk_cli, self.settings,
                                          f"pjsip show contacts like {endpoint}")
            return any(want in line.split() for line in out.splitlines() if "Contact:" in line)

        await until(ok, 10, f"{endpoint} contact {want}")

    def cleanup(self) -> None:
        for ph in self.phones.values():
            ph.cleanup()


@pytest.fixture
async def phones(test_settings: Settings) -> AsyncIterator[PhoneBank]:
    bank = PhoneBank(test_settings)
    yield bank
    bank.cleanup()


class Harness:
    """A controller on a private Redis prefix, with call records to wait on."""

    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.prefix = settings.redis_prefix
        self.ctl: Controller | None = None
        self.records: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def publish(self, yaml_text: str, tmp: Path) -> int:
        d = tmp / f"flows-{uuid.uuid4().hex[:6]}"
        d.mkdir()
        (d / "flows.yaml").write_text(textwrap.dedent(yaml_text))
        res = loader.load([d])
        assert not res.errors, "\n".join(map(str, res.errors))
        return await publish.publish(self.redis, res, prefix=self.prefix)

    async def start(self, **kw: Any) -> Controller:
        self.ctl = build_controller(self.settings, **kw)
        self.ctl.observers.append(self.records.put_nowait)
        await self.ctl.start()
        await asyncio.wait_for(self.ctl.stream.connected_event.wait(), 10)
        return self.ctl

    async def call(self, did: str, **kw: Any) -> Any:
        return await asyncio.to_thread(place_call, did, sip_port=SIP_PORT, **kw)

    async def record(self, timeout: float = 30.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.records.get(), timeout)

    async def stop(self) -> None:
        if self.ctl is not None:
            await self.ctl.close()
            self.ctl = None


@pytest.fixture
async def harness(test_settings: Settings, ari: AriClient) -> AsyncIterator[Harness]:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    settings = Settings(**{**test_settings.__dict__, "redis_prefix": prefix})
    redis = aioredis.from_url(settings.redis_url, decode_responses=True)
    h = Harness(settings, redis)
    try:
        yield h
    finally:
        stuck = False
        try:  # a controller that cannot stop is a failure to see, not a CI run that hangs
            async with asyncio.timeout(60):
                await h.stop()
        except TimeoutError:
            stuck = True
        # The controller wrote its flows' outage failover targets into AstDB: remove them.
        await asyncio.to_thread(stack.asterisk_cli, settings,
                                "database deltree callctl_failover")
        # Nothing of ours may be left in Asterisk.
        leftovers = [c["id"] for c in await ari.list_channels() or []]
        bridges = [b["id"] for b in await ari.list_bridges() or []]
        for cid in leftovers:
            try:
                await ari.hangup(cid)
            except Exception:
                pass
        for bid in bridges:
            try:
                await ari.destroy_bridge(bid)
            except Exception:
                pass
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
        assert not stuck, "the controller did not stop within 60 s"
        assert not leftovers, f"channels left behind: {leftovers}"
        assert not bridges, f"bridges left behind: {bridges}"
