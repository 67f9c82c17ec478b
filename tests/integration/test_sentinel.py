"""Issue 6: the controller's Redis client through Redis Sentinel (``REDIS_URL=
redis+sentinel://...``): a master, a replica and one sentinel on loopback, started and stopped
here (ports ``7200 + 10 * CALLCTL_TEST_SLOT`` + 0/1/2), with a password as the stack's Redis.
The test starts once the sentinel sees the master and the replica up and linked, and the
replica is in sync (a bounded wait). After a failover the same client writes to the new
master and still sees what was written before it."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redisproc import REDIS_SERVER, RedisServer

from controller.adapters.redis import RedisStore, StoreUnavailable
from controller.adapters.redis.leases import Leases

from integration.conftest import until

SLOT = int(os.environ.get("CALLCTL_TEST_SLOT", "0"))
MASTER, REPLICA, SENTINEL = (7200 + 10 * SLOT + k for k in range(3))
pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")


PASSWORD = secrets.token_urlsafe(24)
"""The master's and the replica's (requirepass, masterauth: either may be the master after a
failover); the sentinel has it as auth-pass. The sentinel itself takes no password
(controller.adapters.redis.connect reaches sentinels without one)."""


@pytest.fixture(scope="module")
def sentinel_set() -> Iterator[None]:
    work = Path(tempfile.mkdtemp(prefix="callctl-sentinel-"))
    auth = (f"masterauth {PASSWORD}",)
    servers = [
        RedisServer(MASTER, password=PASSWORD, extra=auth, workdir=work / "m"),
        RedisServer(REPLICA, password=PASSWORD, workdir=work / "r",
                    extra=(*auth, f"replicaof 127.0.0.1 {MASTER}")),
        # down-after 5 s: a loaded machine that stalls a PING for a second must not fail the
        # master over by itself (the test asks for its failover: SENTINEL FAILOVER)
        RedisServer(SENTINEL, password="", sentinel=True, workdir=work / "s", extra=(
            f"sentinel monitor callctl 127.0.0.1 {MASTER} 1",
            f"sentinel auth-pass callctl {PASSWORD}",
            "sentinel down-after-milliseconds callctl 5000",
            "sentinel failover-timeout callctl 10000")),
    ]
    try:
        for srv in servers:
            srv.start()
        yield
    finally:
        for srv in servers:
            srv.stop()
        shutil.rmtree(work, ignore_errors=True)


def _fields(raw: Any) -> dict[str, Any]:
    """A SENTINEL MASTER/REPLICAS entry (redis-py gives a dict, or the raw flat list)."""
    return dict(raw) if isinstance(raw, dict) else dict(zip(raw[::2], raw[1::2], strict=True))


async def set_ready(s: aioredis.Redis) -> str:
    """What the Redis set still lacks before a test may start ("" = nothing): the sentinel
    sees the master up, and the replica up and linked; the replica has finished its sync."""
    try:
        master = _fields(await s.execute_command("SENTINEL", "MASTER", "callctl"))
        replicas = [_fields(r) for r in
                    await s.execute_command("SENTINEL", "REPLICAS", "callctl")]
        if master.get("flags") != "master":
            return f"master flags {master.get('flags')}"
        good = [r for r in replicas if r.get("flags") == "slave"
                and r.get("master-link-status") == "ok"]
        if not good:
            return f"no linked replica seen by the sentinel: {replicas}"
        for r in good:
            other = aioredis.Redis(port=int(r["port"]), password=PASSWORD,
                                   decode_responses=True, socket_timeout=2)
            try:
                info = await other.info("replication")
            finally:
                await other.aclose()
            if info.get("master_link_status") != "up" or info.get("master_sync_in_progress"):
                return f"replica {r['port']} not in sync: {info}"
        return ""
    except (OSError, aioredis.RedisError) as e:
        return f"{type(e).__name__}: {e}"


@pytest.fixture
async def sentinel(sentinel_set: None) -> AsyncIterator[aioredis.Redis]:
    s = aioredis.Redis(port=SENTINEL, decode_responses=True, socket_timeout=2)
    lacking = ["not asked yet"]

    async def ready() -> bool:
        lacking[0] = await set_ready(s)
        return not lacking[0]

    try:
        try:
            await until(ready, 30, "the sentinel to know the master and its replica, in sync")
        except AssertionError as e:
            raise AssertionError(f"{e}: {lacking[0]}") from None
        yield s
    finally:
        await s.aclose()


async def master_port(s: aioredis.Redis) -> int:
    _host, port = await s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "callctl")
    return int(port)


async def test_the_store_follows_the_master_through_a_sentinel_failover(
        sentinel: aioredis.Redis) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    store = RedisStore(f"redis+sentinel://:{PASSWORD}@127.0.0.1:{SENTINEL}/callctl/0", prefix)
    try:
        before = await master_port(sentinel)
        assert await store.ping()
        # the per-call steps go through the store's hot-path runner (store/runner.py)
        leases = Leases(store.redis, prefix, "c1", "i1", 60_000, runner=store.runner)
        assert await leases.start_call("call-1", "a", {"started": "1"})
        assert await leases.connected("call-1", ["alice"], {"state": "connected"})
        assert await leases.claim_node("a")

        replica = aioredis.Redis(port=REPLICA if before == MASTER else MASTER,
                                 password=PASSWORD, decode_responses=True)

        async def replicated() -> bool:
            return await replica.get(f"{prefix}busy:alice") == "call-1"

        await until(replicated, 10, "the write replicated")
        await replica.aclose()

        async def failover() -> bool:
            try:
                await sentinel.execute_command("SENTINEL", "FAILOVER", "callctl")
                return True
            except aioredis.ResponseError as e:  # the replica not yet seen as a good one
                if "NOGOODSLAVE" not in str(e):
                    raise
                return False

        await until(failover, 20, "the sentinel accepting a failover")

        async def switched() -> bool:
            return await master_port(sentinel) != before

        await until(switched, 20, "the sentinel promoting the replica")

        async def writes() -> bool:
            try:
                await leases.start_call("call-2", "a", {"started": "2"})
                return await leases.connected("call-2", ["bob"], {"state": "connected"})
            except StoreUnavailable:  # a connection to the old master: dropped, retried
                return False

        await until(writes, 20, "writes through the store's connections to the new master")
        facts = await store.facts(("alice", "bob"))
        assert facts["alice"].busy and facts["bob"].busy
        assert await leases.node_owner("a") == "c1/i1"  # the lease survived the failover
        assert await leases.claim_node("a")
    finally:
        await store.close()  # the whole Redis set is thrown away with the module fixture
