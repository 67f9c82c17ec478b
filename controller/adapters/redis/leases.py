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
from controller.adapters.redis.keys import Keys
from controller.adapters.redis.runner import CommandRunner, RedisPyRunner, Script
from controller.adapters.redis.scripts import (
    ADOPT,
    CLAIM,
    CONNECTED,
    FINISH_CALL,
    HEARTBEAT,
    RELEASE,
    RELEASE_CALLS,
    RENEW,
    START_CALL,
)
from controller.adapters.redis.store import (
    BUSY_TTL,
    CALL_TTL,
    CALLLOG_MAXLEN,
    TRACE_TTL,
    StoreUnavailable,
)

STARTED, TAKEN, ENDED = 1, 0, 2
"""START_CALL's answers (``Leases.start_call``)."""
CLAIMED, CLAIMED_ELSEWHERE, CLAIMED_NO_STATE = 1, 0, 2
"""CONNECTED's answers to a claim."""

_RELEASE_CALLS = Script(RELEASE_CALLS)

GONE = "gone"


@dataclass(frozen=True)
class CallEnd:
    """What a finished call leaves in Redis (see FINISH_CALL and ``controller.core.calllog``)."""

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
        self.keys = Keys(prefix)
        self.id = controller_id
        self.token = f"{controller_id}/{instance}"
        self.ttl_ms = ttl_ms
        self._claim = redis.register_script(CLAIM)
        self._release = redis.register_script(RELEASE)
        # the per-call steps and the renewal go through the hot-path runner (runner.py):
        # the store's (the cluster passes it), else redis-py on ``redis``'s pool
        self.runner = runner if runner is not None else RedisPyRunner(redis)
        self._owns_runner = runner is None
        self._renew = Script(RENEW)
        self._start = Script(START_CALL)
        self._adopt = redis.register_script(ADOPT)
        self._finish = Script(FINISH_CALL)
        self._connected = Script(CONNECTED)
        self._heartbeat = redis.register_script(HEARTBEAT)

    # ----------------------------------------------------------------- nodes

    async def claim_node(self, node: str) -> bool:
        return bool(await self._do(self._claim(
            keys=[self.keys.node_lease(node)], args=[self.token, f"{self.id}/", self.ttl_ms, "1"])))

    async def node_owner(self, node: str) -> str | None:
        owner = await self._do(self.redis.get(self.keys.node_lease(node)))
        return owner  # type: ignore[no-any-return]

    async def release_node(self, node: str) -> bool:
        return bool(await self._do(self._release(keys=[self.keys.node_lease(node)],
                                                 args=[self.token])))

    async def renew(self, nodes: Sequence[str], calls: Sequence[str]) -> tuple[
            dict[str, bool], dict[str, bool]]:
        """Extend our node and call leases in one step: ``({node: still ours}, {call: ...})``.
        A lapsed node lease is taken again (we still hold its websocket); a lapsed call lease
        only while the call's state still exists."""
        keys = [self.keys.node_lease(n) for n in nodes]
        for c in calls:
            keys += [self.keys.call_lease(c), self.keys.call(c)]
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
            keys=[self.keys.controllers, self.keys.controller(self.id)],
            args=[self.id, int(time.time() * 1000), self.ttl_ms, jsonx.dumps(info)]))
        before: dict[str, Any] | None = None
        if res and res[0]:
            with contextlib.suppress(ValueError):
                before = jsonx.loads(res[0])
        ids = list(res[1:]) if res else []
        if not ids:
            return {}, before
        raw = await self._do(self.redis.mget([self.keys.controller(i) for i in ids]))
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
            pipe.zrem(self.keys.controllers, self.id)
            pipe.delete(self.keys.controller(self.id))
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
            keys=[self.keys.call(call_id), self.keys.calls_live, self.keys.call_lease(call_id),
                  self.keys.node_calls(node), self.keys.trace(call_id)], args=args)))

    async def finish_call(self, call_id: str, node: str, end: CallEnd) -> None:
        """The call ended: everything Redis keeps of it, in one atomic step (FINISH_CALL)."""
        k = self.keys
        keys = [k.call(call_id), k.calls_live, k.call_lease(call_id), k.node_calls(node),
                k.lastcall, k.trace(call_id), k.calllog]
        keys += [k.busy(u) for u in end.busy]
        users = list(end.published)
        keys += [k.user(u) for u in users]
        index = {u: i + 1 for i, u in enumerate(users)}
        args: list[Any] = [call_id, self.token, end.ended, end.trace_json, TRACE_TTL,
                           end.record_json, CALLLOG_MAXLEN, len(end.busy), len(users),
                           len(end.counts), *end.busy]
        args += ["1" if end.published[u] else "0" for u in users]
        for key, name, n, owner in end.counts:
            keys.append(k.stats(key))
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
            keys=[self.keys.call(call_id), *(self.keys.busy(u) for u in busy)],
            args=args)))

    async def release_call(self, call_id: str) -> bool:
        return bool(await self._do(self._release(keys=[self.keys.call_lease(call_id)],
                                                 args=[self.token])))

    async def orphans(self, node: str, mine: set[str]) -> list[str]:
        """Live calls on ``node`` that are not ours and whose lease has lapsed (or is our
        previous life's): candidates for adoption."""
        ids = [c for c in await self._do(self.redis.smembers(self.keys.node_calls(node)))
               if c not in mine]
        if not ids:
            return []
        owners = await self._do(self.redis.mget([self.keys.call_lease(c) for c in ids]))
        prefix = f"{self.id}/"
        return [c for c, o in zip(ids, owners, strict=True)
                if o is None or (o != self.token and o.startswith(prefix))]

    async def adopt(self, call_id: str) -> dict[str, str] | str | None:
        """Claim an orphan call: its state (the ``call:<id>`` hash), ``GONE`` if that state
        no longer exists, or None if another controller holds the call."""
        raw = await self._do(self._adopt(
            keys=[self.keys.call_lease(call_id), self.keys.call(call_id)],
            args=[self.token, f"{self.id}/", self.ttl_ms]))
        if raw == -1:
            return GONE
        if not raw:
            return None
        it = iter(raw)
        return dict(zip(it, it, strict=True))

    async def forget(self, call_id: str, node: str) -> None:
        """Drop a dangling index entry (its ``call:<id>`` hash expired)."""
        await self._do(self.redis.srem(self.keys.node_calls(node), call_id))

    async def release_calls(self, call_ids: Sequence[str]) -> int:
        """A handover (controller.cluster.handover): release, in one step, the leases of these calls
        that are still ours, so whoever holds their node next adopts them at once. Returns
        how many were released."""
        if not call_ids:
            return 0
        return int(await self._do(self.runner.evalsha(
            _RELEASE_CALLS, keys=[self.keys.call_lease(c) for c in call_ids], args=[self.token])))

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
