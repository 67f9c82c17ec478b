"""Issue 6: the controller's Redis client through Redis Sentinel (``REDIS_URL=
redis+sentinel://...``): a master, a replica and one sentinel on loopback, started and stopped
here (ports ``7200 + 10 * CALLCTL_TEST_SLOT`` + 0/1/2). After a failover the same client
writes to the new master and still sees what was written before it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from controller.store import RedisStore, StoreUnavailable
from controller.store.leases import Leases

from integration.conftest import until

SLOT = int(os.environ.get("CALLCTL_TEST_SLOT", "0"))
MASTER, REPLICA, SENTINEL = (7200 + 10 * SLOT + k for k in range(3))
REDIS = shutil.which("redis-server")

pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")


@pytest.fixture(scope="module")
def sentinel_set() -> Iterator[None]:
    work = Path(tempfile.mkdtemp(prefix="callctl-sentinel-"))
    procs: list[subprocess.Popen[bytes]] = []

    def start(port: int, *extra: str) -> None:
        d = work / str(port)
        d.mkdir()
        argv = [str(REDIS), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d),
                "--save", "", "--appendonly", "no", *extra]
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True))

    conf = work / "sentinel.conf"
    conf.write_text(f"port {SENTINEL}\nbind 127.0.0.1\ndir {work}\n"
                    f"sentinel monitor callctl 127.0.0.1 {MASTER} 1\n"
                    "sentinel down-after-milliseconds callctl 1000\n"
                    "sentinel failover-timeout callctl 10000\n")
    try:
        start(MASTER)
        start(REPLICA, "--replicaof", "127.0.0.1", str(MASTER))
        procs.append(subprocess.Popen([str(REDIS), str(conf), "--sentinel"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
async def sentinel(sentinel_set: None) -> AsyncIterator[aioredis.Redis]:
    s = aioredis.Redis(port=SENTINEL, decode_responses=True, socket_timeout=2)

    async def ready() -> bool:
        try:
            return bool(await s.execute_command("SENTINEL", "REPLICAS", "callctl"))
        except (OSError, aioredis.RedisError):
            return False

    await until(ready, 20, "the sentinel knows the master and its replica")
    yield s
    await s.aclose()


async def master_port(s: aioredis.Redis) -> int:
    _host, port = await s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "callctl")
    return int(port)


async def test_the_store_follows_the_master_through_a_sentinel_failover(
        sentinel: aioredis.Redis) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    store = RedisStore(f"redis+sentinel://127.0.0.1:{SENTINEL}/callctl/0", prefix)
    try:
        before = await master_port(sentinel)
        assert await store.ping()
        # the per-call steps go over the store's pipelined connection (store/mux.py)
        leases = Leases(store.redis, prefix, "c1", "i1", 60_000, mux=store.mux)
        assert await leases.start_call("call-1", "a", {"started": "1"})
        assert await leases.connected("call-1", ["alice"], {"state": "connected"})
        assert await leases.claim_node("a")

        replica = aioredis.Redis(port=REPLICA if before == MASTER else MASTER,
                                 decode_responses=True)

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
