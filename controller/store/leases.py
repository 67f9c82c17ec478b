"""Leases in Redis: which controller holds an Asterisk node, which one drives a call.

A lease is a string key holding the owner's token ``<controller id>/<instance>`` with a TTL
in milliseconds (``SET NX PX``), renewed by its owner every third of the TTL and released
(deleted only if still ours) when done. Every check-and-set is one Lua script, so two
controllers can never both believe they hold the same lease.

Keys (under the store prefix):

- ``lease:node:<node>`` string: token of the controller holding the node's ARI websocket;
  PX = lease time (CALLCTL_LEASE_MS, default 5 s)
- ``lease:call:<call id>`` string: token of the controller driving the call; PX = lease time
- ``calls:node:<node>`` set: ids of the live calls on a node (with ``call:<id>``; removed when
  the call ends). A new holder of the node adopts those whose lease has lapsed.
- ``controller:<id>`` string: JSON presence of a live controller (its token, the nodes it
  serves, its primary nodes, the nodes it holds); PX = lease time
- ``controllers`` zset: controller id -> presence expiry (ms); lapsed entries are pruned

A token whose controller id is ours but whose instance is not (this controller's previous
life, with a stable ``CALLCTL_CONTROLLER_ID``) counts as free for us: a restarted controller
takes its node and calls back at once instead of waiting for the lease to lapse.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from controller import jsonx
from controller.store.redis_store import (
    BUSY_TTL,
    CALL_TTL,
    CALLLOG_MAXLEN,
    TRACE_TTL,
    StoreUnavailable,
)
from controller.store.runner import CommandRunner, RedisPyRunner, Script

# KEYS[1] lease   ARGV[1] my token  ARGV[2] "<my id>/"  ARGV[3] ttl ms  ARGV[4] "1": mine counts
# Take the lease if it is free, held by our previous life, or (ARGV[4]) already ours.
CLAIM = """
local cur = redis.call('GET', KEYS[1])
if (not cur) or (cur == ARGV[1] and ARGV[4] == '1')
   or (cur ~= ARGV[1] and string.sub(cur, 1, #ARGV[2]) == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return 1
end
return 0
"""

# KEYS[1] lease  ARGV[1] my token
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

# KEYS = N node leases, then pairs (call lease, call:<id>)   ARGV[1] my token  ARGV[2] ttl ms
# ARGV[3] N.  A node lease: ours -> extend; lapsed -> take again (we still hold its websocket).
# A call lease: ours -> extend; lapsed while the call's state still exists -> take again.
# Else (someone else's; or the call ended) -> 0.
RENEW = """
local out = {}
local n = tonumber(ARGV[3])
for i = 1, n do
  local cur = redis.call('GET', KEYS[i])
  if cur == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    out[#out + 1] = 1
  elseif not cur then
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
for i = n + 1, #KEYS, 2 do
  local cur = redis.call('GET', KEYS[i])
  if cur == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    out[#out + 1] = 1
  elseif (not cur) and redis.call('EXISTS', KEYS[i + 1]) == 1 then
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""

# KEYS[1] call:<id>  KEYS[2] calls:live  KEYS[3] lease:call:<id>  KEYS[4] calls:node:<node>
# KEYS[5] trace:<id>   ARGV[1] call id  ARGV[2] started  ARGV[3] hash ttl s  ARGV[4] my token
# ARGV[5] lease ms  ARGV[6..] field/value pairs.   A new call: lease, hash and indexes in one
# step; 0: another controller holds its lease. 2: the call has ended already (its trace,
# written by FINISH_CALL, exists): nothing is written. The start is sent in the background
# and, over a connection pool, may reach Redis after the call's own end (another connection,
# still connecting): it must not bring the call back.
START_CALL = """
if redis.call('EXISTS', KEYS[5]) == 1 then
  return 2
end
local cur = redis.call('GET', KEYS[3])
if cur and cur ~= ARGV[4] then
  return 0
end
redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
redis.call('HSET', KEYS[1], 'owner', ARGV[4], unpack(ARGV, 6))
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
return 1
"""

# KEYS[1] call:<id>  KEYS[2] calls:live  KEYS[3] lease:call:<id>  KEYS[4] calls:node:<node>
# KEYS[5] lastcall  KEYS[6] trace:<id>  KEYS[7] calllog, then NB busy:<user>, NU user:<user>,
# NC stats:<key> keys.   ARGV[1] call id  ARGV[2] my token  ARGV[3] now  ARGV[4] trace JSON
# ARGV[5] trace ttl s  ARGV[6] record JSON  ARGV[7] calllog maxlen  ARGV[8] NB  ARGV[9] NU
# ARGV[10] NC, then NB busy users, NU published receive_calls ("1"/"0") of the user:<user>
# keys, NC (field, increment, index of the owning user in the user keys or 0) triples.
# A finished call in one step: state, indexes and lease gone; busy marks released (only the
# ones this call holds) with the end of the user's call stamped; trace and call log written;
# answered/missed counters added, leaving out users opted out right now (runtime override
# in user:<user>, else the published value).
FINISH_CALL = """
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
if redis.call('GET', KEYS[3]) == ARGV[2] then
  redis.call('DEL', KEYS[3])
end
local nb, nu, nc = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local k, a = 8, 11
for i = 1, nb do
  if redis.call('GET', KEYS[k]) == ARGV[1] then
    redis.call('DEL', KEYS[k])
    redis.call('ZADD', KEYS[5], ARGV[3], ARGV[a])
  end
  k, a = k + 1, a + 1
end
local out = {}
for i = 1, nu do
  local rc = redis.call('HGET', KEYS[k], 'receive_calls') or ARGV[a]
  out[i] = rc ~= '1'
  k, a = k + 1, a + 1
end
for i = 1, nc do
  local owner = tonumber(ARGV[a + 2])
  if owner == 0 or not out[owner] then
    redis.call('HINCRBY', KEYS[k], ARGV[a], ARGV[a + 1])
  end
  k, a = k + 1, a + 3
end
redis.call('SET', KEYS[6], ARGV[4], 'EX', ARGV[5])
redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[7], '*', 'record', ARGV[6])
return 1
"""

# KEYS[1] call:<id>, then busy:<user> keys   ARGV[1] call id  ARGV[2] busy ttl s
# ARGV[3] "1": claim, "0": save   ARGV[4..] field/value pairs.
# Claim (a leg answered, before the caller is answered or bridged): its users must be free
# or already this call's, else nothing is written and 0 is returned (booked by another
# call). Then their busy marks and the call's connected state (what a peer needs to finish
# the connect and supervise the call) in the same step: 1; 2 if the call's state does not
# exist (not written yet: its marks are set, its state is written later).
# Save (the state of a bridged call written again: a handover, Redis back): only while the
# call is live (its state exists; else 0), so a late write never marks anyone busy for a
# call that already ended; a busy mark held by another call is left alone.
CONNECTED = """
local claim = ARGV[3] == '1'
local free = true
for i = 2, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  if cur and cur ~= ARGV[1] then
    free = false
  end
end
if claim and not free then
  return 0
end
local live = redis.call('EXISTS', KEYS[1]) == 1
if not (claim or live) then
  return 0
end
for i = 2, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  if (not cur) or cur == ARGV[1] then
    redis.call('SET', KEYS[i], ARGV[1], 'EX', ARGV[2])
  end
end
if not live then
  return 2
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
return 1
"""
CLAIMED, CLAIMED_ELSEWHERE, CLAIMED_NO_STATE = 1, 0, 2
STARTED, TAKEN, ENDED = 1, 0, 2
"""START_CALL's answers (``Leases.start_call``)."""
"""CONNECTED's answers to a claim."""

# KEYS[1] lease:call:<id>  KEYS[2] call:<id>   ARGV[1] my token  ARGV[2] "<my id>/"
# ARGV[3] ttl ms.   Adopt an orphan: claim its lease (free or our previous life's) and
# stamp the new owner on the call. Returns the call's hash as it was (its "owner" is the
# previous one); -1 if the call's state is gone,
# 0 if another controller holds it.
ADOPT = """
if redis.call('EXISTS', KEYS[2]) == 0 then
  return -1
end
local cur = redis.call('GET', KEYS[1])
if cur and (cur == ARGV[1] or string.sub(cur, 1, #ARGV[2]) ~= ARGV[2]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
local state = redis.call('HGETALL', KEYS[2])
redis.call('HSET', KEYS[2], 'owner', ARGV[1])
return state
"""

# KEYS[1] controllers (zset)  KEYS[2] controller:<id>
# ARGV[1] id  ARGV[2] now ms  ARGV[3] ttl ms  ARGV[4] JSON {token, nodes, primary}
# Say we are alive; forget controllers whose presence lapsed. Returns {our presence as it
# was (false if none), live id, live id, ...}.
HEARTBEAT = """
local before = redis.call('GET', KEYS[2])
redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[3])
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local out = {before}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  out[#out + 1] = id
end
return out
"""

# KEYS = lease:call:<id> keys   ARGV[1] my token.   A handover: release the call leases
# that are still ours (the others are left alone). Returns how many were released.
RELEASE_CALLS = """
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    n = n + 1
  end
end
return n
"""
_RELEASE_CALLS = Script(RELEASE_CALLS)

GONE = "gone"


@dataclass(frozen=True)
class CallEnd:
    """What a finished call leaves in Redis (see FINISH_CALL and ``controller.calllog``)."""

    ended: float
    record_json: str
    trace_json: str
    busy: tuple[str, ...] = ()
    published: dict[str, bool] = field(default_factory=dict)
    """receive_calls as published, for each user the counters mention"""
    counts: tuple[tuple[str, str, int, str | None], ...] = ()
    """(stats key, field, increment, user whose opt-out drops it or None)"""


class Leases:
    """Lease operations for one controller instance (``token`` = ``<id>/<instance>``)."""

    def __init__(self, redis: aioredis.Redis, prefix: str, controller_id: str, instance: str,
                 ttl_ms: int, *, runner: CommandRunner | None = None) -> None:
        self.redis = redis
        self.p = prefix
        self.id = controller_id
        self.token = f"{controller_id}/{instance}"
        self.ttl_ms = ttl_ms
        self._claim = redis.register_script(CLAIM)
        self._release = redis.register_script(RELEASE)
        # the per-call steps and the renewal go through the hot-path runner (store/runner.py):
        # the store's (cluster.py passes it), else redis-py on ``redis``'s pool
        self.runner = runner if runner is not None else RedisPyRunner(redis)
        self._owns_runner = runner is None
        self._renew = Script(RENEW)
        self._start = Script(START_CALL)
        self._adopt = redis.register_script(ADOPT)
        self._finish = Script(FINISH_CALL)
        self._connected = Script(CONNECTED)
        self._heartbeat = redis.register_script(HEARTBEAT)

    # ----------------------------------------------------------------- keys

    def node_key(self, node: str) -> str:
        return f"{self.p}lease:node:{node}"

    def call_key(self, call_id: str) -> str:
        return f"{self.p}lease:call:{call_id}"

    def node_calls_key(self, node: str) -> str:
        return f"{self.p}calls:node:{node}"

    # ----------------------------------------------------------------- nodes

    async def claim_node(self, node: str) -> bool:
        return bool(await self._do(self._claim(
            keys=[self.node_key(node)], args=[self.token, f"{self.id}/", self.ttl_ms, "1"])))

    async def node_owner(self, node: str) -> str | None:
        return await self._do(self.redis.get(self.node_key(node)))  # type: ignore[no-any-return]

    async def release_node(self, node: str) -> bool:
        return bool(await self._do(self._release(keys=[self.node_key(node)],
                                                 args=[self.token])))

    async def renew(self, nodes: Sequence[str], calls: Sequence[str]) -> tuple[
            dict[str, bool], dict[str, bool]]:
        """Extend our node and call leases in one step: ``({node: still ours}, {call: ...})``.
        A lapsed node lease is taken again (we still hold its websocket); a lapsed call lease
        only while the call's state still exists."""
        keys = [self.node_key(n) for n in nodes]
        for c in calls:
            keys += [self.call_key(c), f"{self.p}call:{c}"]
        if not keys:
            return {}, {}
        res = await self._do(self.runner.evalsha(self._renew, keys=keys,
                                         args=[self.token, self.ttl_ms, len(nodes)]))
        node_ok = {n: bool(r) for n, r in zip(nodes, res[:len(nodes)], strict=True)}
        call_ok = {c: bool(r) for c, r in zip(calls, res[len(nodes):], strict=True)}
        return node_ok, call_ok

    async def heartbeat(self, info: dict[str, Any]) -> tuple[
            dict[str, dict[str, Any]], dict[str, Any] | None]:
        """Publish our presence (``controller:<id>``, PX lease time). Returns every live
        controller's (``{id: {"token", "nodes", "primary", "held"}}``) and our own presence
        as it was before (another token there: a previous life, or a duplicate id)."""
        res = await self._do(self._heartbeat(
            keys=[f"{self.p}controllers", f"{self.p}controller:{self.id}"],
            args=[self.id, int(time.time() * 1000), self.ttl_ms, jsonx.dumps(info)]))
        before: dict[str, Any] | None = None
        if res and res[0]:
            with contextlib.suppress(ValueError):
                before = jsonx.loads(res[0])
        ids = list(res[1:]) if res else []
        if not ids:
            return {}, before
        raw = await self._do(self.redis.mget([f"{self.p}controller:{i}" for i in ids]))
        out: dict[str, dict[str, Any]] = {}
        for i, r in zip(ids, raw, strict=True):
            if r:
                try:
                    out[i] = jsonx.loads(r)
                except ValueError:
                    continue
        return out, before

    async def leave(self) -> None:
        """We stop: remove our presence at once."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(f"{self.p}controllers", self.id)
            pipe.delete(f"{self.p}controller:{self.id}")
            await self._do(pipe.execute())

    # ----------------------------------------------------------------- calls

    async def start_call(self, call_id: str, node: str, fields: dict[str, str]) -> int:
        """Record a new call we drive (lease + ``call:<id>`` + indexes): ``STARTED``;
        ``TAKEN`` (falsy): another controller holds its lease; ``ENDED``: the call's end was
        written already, nothing is (START_CALL)."""
        args: list[Any] = [call_id, fields.get("started", time.time()), CALL_TTL, self.token,
                           self.ttl_ms]
        for k, v in {**fields, "node": node}.items():
            args += [k, v]
        return int(await self._do(self.runner.evalsha(self._start,
            keys=[f"{self.p}call:{call_id}", f"{self.p}calls:live", self.call_key(call_id),
                  self.node_calls_key(node), f"{self.p}trace:{call_id}"], args=args)))

    async def finish_call(self, call_id: str, node: str, end: CallEnd) -> None:
        """The call ended: everything Redis keeps of it, in one atomic step (FINISH_CALL)."""
        p = self.p
        keys = [f"{p}call:{call_id}", f"{p}calls:live", self.call_key(call_id),
                self.node_calls_key(node), f"{p}lastcall", f"{p}trace:{call_id}",
                f"{p}calllog"]
        keys += [f"{p}busy:{u}" for u in end.busy]
        users = list(end.published)
        keys += [f"{p}user:{u}" for u in users]
        index = {u: i + 1 for i, u in enumerate(users)}
        args: list[Any] = [call_id, self.token, end.ended, end.trace_json, TRACE_TTL,
                           end.record_json, CALLLOG_MAXLEN, len(end.busy), len(users),
                           len(end.counts), *end.busy]
        args += ["1" if end.published[u] else "0" for u in users]
        for key, name, n, owner in end.counts:
            keys.append(f"{p}stats:{key}")
            args += [name, n, index.get(owner or "", 0)]
        await self._do(self.runner.evalsha(self._finish, keys=keys, args=args))

    async def connected(self, call_id: str, busy: Sequence[str],
                        fields: dict[str, str]) -> bool:
        """Save a bridged call's state again (busy marks + adoption state, one step:
        CONNECTED). False: the call already ended (nothing written)."""
        return await self._connected_step(call_id, busy, fields, claim=False) == CLAIMED

    async def claim_connected(self, call_id: str, busy: Sequence[str],
                              fields: dict[str, str]) -> int:
        """A leg answered: book ``busy`` for this call and record it as connected, in one
        atomic step, before the caller is answered (CONNECTED). ``CLAIMED``;
        ``CLAIMED_ELSEWHERE`` (a user is on another call: nothing written);
        ``CLAIMED_NO_STATE`` (booked, but the call's state is not in Redis yet)."""
        return await self._connected_step(call_id, busy, fields, claim=True)

    async def _connected_step(self, call_id: str, busy: Sequence[str], fields: dict[str, str],
                              *, claim: bool) -> int:
        args: list[Any] = [call_id, BUSY_TTL, "1" if claim else "0"]
        for k, v in fields.items():
            args += [k, v]
        return int(await self._do(self.runner.evalsha(self._connected,
            keys=[f"{self.p}call:{call_id}", *(f"{self.p}busy:{u}" for u in busy)],
            args=args)))

    async def release_call(self, call_id: str) -> bool:
        return bool(await self._do(self._release(keys=[self.call_key(call_id)],
                                                 args=[self.token])))

    async def orphans(self, node: str, mine: set[str]) -> list[str]:
        """Live calls on ``node`` that are not ours and whose lease has lapsed (or is our
        previous life's): candidates for adoption."""
        ids = [c for c in await self._do(self.redis.smembers(self.node_calls_key(node)))
               if c not in mine]
        if not ids:
            return []
        owners = await self._do(self.redis.mget([self.call_key(c) for c in ids]))
        prefix = f"{self.id}/"
        return [c for c, o in zip(ids, owners, strict=True)
                if o is None or (o != self.token and o.startswith(prefix))]

    async def adopt(self, call_id: str) -> dict[str, str] | str | None:
        """Claim an orphan call: its state (the ``call:<id>`` hash), ``GONE`` if that state
        no longer exists, or None if another controller holds the call."""
        raw = await self._do(self._adopt(
            keys=[self.call_key(call_id), f"{self.p}call:{call_id}"],
            args=[self.token, f"{self.id}/", self.ttl_ms]))
        if raw == -1:
            return GONE
        if not raw:
            return None
        it = iter(raw)
        return dict(zip(it, it, strict=True))

    async def forget(self, call_id: str, node: str) -> None:
        """Drop a dangling index entry (its ``call:<id>`` hash expired)."""
        await self._do(self.redis.srem(self.node_calls_key(node), call_id))

    async def release_calls(self, call_ids: Sequence[str]) -> int:
        """A handover (controller.cluster): release, in one step, the leases of these calls
        that are still ours, so whoever holds their node next adopts them at once. Returns
        how many were released."""
        if not call_ids:
            return 0
        return int(await self._do(self.runner.evalsha(
            _RELEASE_CALLS, keys=[self.call_key(c) for c in call_ids], args=[self.token])))

    # ----------------------------------------------------------------- plumbing

    async def close(self) -> None:
        """Close the runner if it is ours (not the store's)."""
        if self._owns_runner:
            await self.runner.close()

    async def _do(self, aw: Any) -> Any:
        try:
            return await aw
        except (RedisError, OSError) as e:
            raise StoreUnavailable(f"redis: {e.__class__.__name__}") from e
