"""Redis adapter: everything that must be shared between controller processes.

Keys (prefix default ``callctl:``), their type, what they hold, TTL:

- ``call:<id>`` hash: a live call (did, caller, started, flow version, node, owner; once
  bridged what a peer needs to adopt it); 4 h. Written with its lease, the per-node index and
  the scale-out keys by ``controller.adapters.redis.leases`` (README "Redis keys" lists them all)
- ``calls:live`` zset: live call ids scored by start time
- ``busy:<user>`` string: the call id the user is on; 4 h (a crash cannot leave anyone busy)
- ``lastcall`` zset: user -> end of their last answered call (longest-idle)
- ``rr:<department>`` string: round-robin cursor (INCR)
- ``sticky:<department>:<number>`` string: who last answered this caller; the dept's TTL
- ``user:<user>`` hash: runtime overrides (receive_calls, alternate, availability, timezone)
- ``stats:agent:<user>``, ``stats:dept:<id>`` hashes: answered/missed counters (calllog.py)
- ``blocklist`` hash, ``blocklist:hits``, ``blocklist:version``: blocked callers (blocklist.py)
- ``audit`` stream: who changed what, when (controller.ops.audit; MAXLEN ~10000)
- ``trace:<id>`` string: JSON decision trace of a finished call; 30 days
- ``calllog`` stream: one record per finished call (MAXLEN ~100000)
- ``failover:tests`` hash: line (DID or department) -> test end (epoch s)
- ``failover:log`` stream: failover test start/stop/expiry and test calls (~10000)
- ``flows:*``: published flow versions (see ``controller.adapters.redis.flowstore``)

Multi-key updates are Lua scripts (atomic). A Redis failure raises ``StoreUnavailable``; the
call runtime catches it and degrades (the call goes on) rather than dropping the call.
"""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    RedisError,
    ResponseError,
)

from controller import jsonx
from controller.adapters.redis import connect
from controller.adapters.redis.keys import DEFAULT_PREFIX, Keys
from controller.adapters.redis.runner import CommandRunner, RedisPyRunner, Script
from controller.adapters.redis.scripts import LOG_REJECTED
from controller.config import redis_safe_url
from controller.core.model import UserFacts
from controller.core.overrides import user_facts

CALL_TTL = 4 * 3600
BUSY_TTL = 4 * 3600
TRACE_TTL = 30 * 86400
CALLLOG_MAXLEN = 100_000


class StoreUnavailable(RuntimeError):
    """Redis did not answer (or answered an error)."""


class RedisStore:
    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX, *, timeout: float = 1.0) -> None:
        self.url = url
        self.p = prefix
        self.keys = Keys(prefix)
        # A bounded pool that waits for a free connection (up to ``timeout``): under load
        # the default pool raises MaxConnectionsError past 100 connections instead. A
        # ``redis+sentinel://`` URL finds the master through Redis Sentinel (store/connect.py).
        self.redis: aioredis.Redis = connect.client(url, timeout=timeout, max_connections=64)
        # the per-call reads and writes (store/runner.py): raw replies, on that pool
        self.runner: CommandRunner = RedisPyRunner(self.redis)
        self._log_rejected = Script(LOG_REJECTED)

    async def close(self) -> None:
        await self.runner.close()
        await connect.aclose(self.redis)

    async def ping(self) -> bool:
        return await self.probe() == "ok"

    async def probe(self) -> str:
        """``"ok"``, ``"auth"`` (it answers but refuses our credentials, or wants some) or
        ``"down"``."""
        try:
            return "ok" if await self.redis.ping() else "down"
        except (AuthenticationError, AuthenticationWrongNumberOfArgsError):
            return "auth"
        except ResponseError as e:  # NOAUTH / "AUTH ... without any password configured"
            return "auth" if "auth" in str(e).lower() else "down"
        except (RedisError, OSError):
            return "down"

    # ----------------------------------------------------------------- live calls

    async def live_calls(self) -> list[dict[str, str]]:
        ids = await self._do(self.redis.zrange(self.keys.calls_live, 0, -1))
        out = []
        for cid in ids:
            h = await self._do(self.redis.hgetall(self.keys.call(cid)))
            if h:
                out.append({"id": cid, **h})
            else:  # expired hash: drop the index entry too
                await self._do(self.redis.zrem(self.keys.calls_live, cid))
        return out

    # ----------------------------------------------------------------- users

    async def facts(self, users: tuple[str, ...]) -> dict[str, UserFacts]:
        if not users:
            return {}
        cmds: list[tuple[str, ...]] = []
        for u in users:
            cmds += [("EXISTS", self.keys.busy(u)), ("ZSCORE", self.keys.lastcall, u),
                     ("HGETALL", self.keys.user(u))]
        raw = await self._do(self.runner.execute_many(cmds))
        out: dict[str, UserFacts] = {}
        for i, u in enumerate(users):
            busy, last, pairs = raw[3 * i], raw[3 * i + 1], raw[3 * i + 2] or []
            over = dict(zip(pairs[::2], pairs[1::2], strict=True))
            # bad stored values are logged and skipped there, never raised: see the module
            out[u] = user_facts(busy, last, over, self.keys.user(u))
        return out

    async def set_user_override(self, user: str, field: str, value: str | None) -> None:
        key = self.keys.user(user)
        if value is None:
            await self._do(self.redis.hdel(key, field))
        else:
            await self._do(self.redis.hset(key, field, value))

    async def add_counts(self, counts: dict[str, dict[str, int]]) -> None:
        """HINCRBY ``stats:<key>`` fields (answered/missed counters, controller.core.calllog)."""
        async def run() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                for key, fields in counts.items():
                    for f, n in fields.items():
                        pipe.hincrby(self.keys.stats(key), f, n)
                await pipe.execute()

        await self._do(run())

    # ----------------------------------------------------------------- strategies

    async def next_cursor(self, key: str) -> int:
        return int(await self._do(self.runner.execute("INCR", self.keys.cursor(key)))) - 1

    async def get_sticky(self, dept: str, caller: str) -> str | None:
        key = self.keys.sticky(dept, caller)
        return await self._do(self.runner.execute("GET", key))  # type: ignore[no-any-return]

    async def set_sticky(self, dept: str, caller: str, user: str, ttl: int) -> None:
        await self._do(self.runner.execute("SET", self.keys.sticky(dept, caller), user,
                                           "EX", ttl))

    # ----------------------------------------------------------------- call log

    async def log_rejected(self, record: dict[str, Any], trace: list[dict[str, Any]],
                           blocked_by: str | None = None) -> bool:
        """A call rejected on arrival: its trace and call log record, and the blocklist's
        counters when ``blocked_by``, in one step written once (LOG_REJECTED): False when
        they were written already (a retry after a lost reply, or a re-sync)."""
        k = self.keys
        return bool(await self._do(self.runner.evalsha(self._log_rejected, keys=[
            k.trace(record["call_id"]), k.calllog, k.blocklist_hits, k.blocklist_blocked],
            args=[jsonx.dumps(trace), TRACE_TTL, jsonx.dumps(record), CALLLOG_MAXLEN,
                  blocked_by or ""])))

    async def get_trace(self, call_id: str) -> list[dict[str, Any]] | None:
        raw = await self._do(self.redis.get(self.keys.trace(call_id)))
        return jsonx.loads(raw) if raw else None

    async def find_call(self, call_id: str, scan: int = 10_000) -> dict[str, Any] | None:
        """The call log record of ``call_id``, searched among the ``scan`` newest calls."""
        rows = await self._do(self.redis.xrevrange(self.keys.calllog, count=scan))
        for _, fields in rows:
            rec = jsonx.loads(fields["record"])
            if rec.get("call_id") == call_id:
                return dict(rec)
        return None

    async def recent_calls(self, count: int = 50) -> list[dict[str, Any]]:
        rows = await self._do(self.redis.xrevrange(self.keys.calllog, count=count))
        return [jsonx.loads(fields["record"]) for _, fields in rows]

    # ----------------------------------------------------------------- failover tests

    async def failover_test_start(self, line: str, seconds: int, by: str) -> float:
        until = time.time() + seconds

        async def run() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(self.keys.failover_tests, line, until)
                pipe.xadd(self.keys.failover_log, {"event": "start", "line": line,
                                                    "until": until, "by": by},
                          maxlen=10000, approximate=True)
                pipe.publish(self.keys.failover_changed, line)
                await pipe.execute()

        await self._do(run())
        return until

    async def failover_test_stop(self, line: str, by: str, event: str = "stop") -> bool:
        async def run() -> int:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hdel(self.keys.failover_tests, line)
                pipe.xadd(self.keys.failover_log, {"event": event, "line": line, "by": by},
                          maxlen=10000, approximate=True)
                pipe.publish(self.keys.failover_changed, line)
                res = await pipe.execute()
                return int(res[0])

        return bool(await self._do(run()))

    async def failover_tests(self) -> dict[str, float]:
        """Active tests: line -> end time. Expired ones are ended (and logged) here."""
        raw = await self._do(self.redis.hgetall(self.keys.failover_tests))
        now = time.time()
        active = {}
        for line, until in raw.items():
            if float(until) > now:
                active[line] = float(until)
            elif await self._do(self.redis.hdel(self.keys.failover_tests, line)):
                await self._do(self.redis.xadd(self.keys.failover_log,
                                               {"event": "expired", "line": line, "by": "ttl"},
                                               maxlen=10000, approximate=True))
        return active

    async def failover_log(self, event: dict[str, str]) -> None:
        # redis-py types xadd's fields as an invariant Dict[FieldT, EncodableT], which no
        # dict[str, str] is to the checker (a read-only Mapping would have done)
        await self._do(self.redis.xadd(self.keys.failover_log, event,  # type: ignore[arg-type]
                                       maxlen=10000, approximate=True))

    async def failover_events(self, count: int = 50) -> list[dict[str, str]]:
        rows = await self._do(self.redis.xrevrange(self.keys.failover_log, count=count))
        return [{"id": rid, **fields} for rid, fields in rows]

    # ----------------------------------------------------------------- plumbing

    async def _do(self, aw: Any) -> Any:
        try:
            return await aw
        except (RedisError, OSError) as e:
            raise StoreUnavailable(f"redis at {self._safe_url()}: {e.__class__.__name__}") from e

    def _safe_url(self) -> str:
        return redis_safe_url(self.url)  # no password
