"""The Redis command runner of the call hot path: one small interface, on redis-py.

``controller.adapters.redis.leases`` and ``store`` send their per-call steps (leases, busy
marks, facts, cursors, sticky map, call end) through a ``CommandRunner``:

- ``execute(*args)``: one command, its raw reply;
- ``execute_many(commands, raise_errors=True)``: several in one round trip (not a
  transaction), their replies in order; ``raise_errors=False`` returns error replies as
  ``ResponseError`` values;
- ``evalsha(script, keys, args)``: a Lua ``Script`` by SHA1, loaded on NOSCRIPT.

Replies have RESP2's shapes, decoded as ``decode_responses=True`` does (bulk strings as str,
integers as int, nil as None, arrays as lists: no per-command conversion, ``HGETALL`` is a
flat list, ``ZSCORE`` a string), whatever protocol the connection speaks.
Errors are redis-py's exception classes (``ConnectionError``, ``TimeoutError``,
``ResponseError``), which the callers turn into ``StoreUnavailable``; every command is
bounded in time.

``RedisPyRunner`` is the implementation: the store's redis-py client and its bounded pool
(``socket_timeout``, ``socket_connect_timeout``, a blocking pool that waits at most the
timeout for a free connection: ``controller.adapters.redis.connect``); redis-py pipelines and
``Script`` (EVALSHA, SCRIPT LOAD on NOSCRIPT). Commands of different tasks go over different
connections, so they are not ordered with each other (START_CALL copes: leases.py). (Our own
pipelined connection, ``mux.py``, was deleted: it saved too little controller CPU per call
for the code it was, README "Performance".)
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.client import CaseInsensitiveDict
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

__all__ = ["CommandRunner", "RedisPyRunner", "Script", "resp2"]


@dataclass(frozen=True)
class Script:
    """A Lua script sent by SHA1 (EVALSHA), loaded on the first NOSCRIPT."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


class CommandRunner(Protocol):
    """See the module docstring."""

    async def execute(self, *args: Any) -> Any: ...

    async def execute_many(self, commands: Sequence[Sequence[Any]], *,
                           raise_errors: bool = True) -> list[Any]: ...

    async def evalsha(self, script: Script, keys: Sequence[str],
                      args: Sequence[Any]) -> Any: ...

    async def close(self) -> None: ...


def resp2(v: Any) -> Any:
    """A RESP3 reply in RESP2's shape: maps as flat lists, sets as lists, doubles as strings,
    booleans as 1/0 (redis-py 8 speaks RESP3 by default)."""
    t = type(v)
    if t is list:
        return [resp2(x) for x in v]
    if t is dict:
        return [resp2(x) for kv in v.items() for x in kv]
    if t is set or t is frozenset:
        return [resp2(x) for x in v]
    if t is float:
        return repr(v)
    if t is bool:
        return int(v)
    return v


def _cancelled_meanwhile() -> None:
    """A redis-py command failed: if our task was cancelled meanwhile, that is what it gets.

    redis-py 8.1 on Python 3.11 can lose a ``cancel()`` that lands just as a new connection is
    set up (it ends as ``TimeoutError`` once the socket timeout runs out, the cancel request
    still pending): a cancelled call task must see ``CancelledError``, never a Redis failure
    (which would put the controller into degraded mode). Test: test_redis_runner.py."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class RedisPyRunner:
    """``CommandRunner`` on a redis-py client's connection pool (shared, not owned: ``close``
    leaves it to its owner). Replies skip redis-py's per-command conversions (``resp2``)."""

    def __init__(self, client: aioredis.Redis) -> None:
        raw = aioredis.Redis(connection_pool=client.connection_pool)
        raw.response_callbacks = CaseInsensitiveDict({})  # raw replies, as documented above
        self._r = raw
        self._scripts: dict[str, AsyncScript] = {}

    async def execute(self, *args: Any) -> Any:
        try:
            # redis-py types execute_command without annotations
            return resp2(await self._r.execute_command(*args))  # type: ignore[no-untyped-call]
        except RedisError:
            _cancelled_meanwhile()
            raise

    async def execute_many(self, commands: Sequence[Sequence[Any]], *,
                           raise_errors: bool = True) -> list[Any]:
        if not commands:
            return []
        try:
            async with self._r.pipeline(transaction=False) as pipe:
                for c in commands:
                    pipe.execute_command(*c)
                return [resp2(r) for r in await pipe.execute(raise_on_error=raise_errors)]
        except RedisError:
            _cancelled_meanwhile()
            raise

    async def evalsha(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        s = self._scripts.get(script.sha)
        if s is None:
            s = self._scripts[script.sha] = self._r.register_script(script.source)
        try:
            return resp2(await s(keys=list(keys), args=list(args)))
        except RedisError:
            _cancelled_meanwhile()
            raise

    async def close(self) -> None:
        """Nothing of its own to close: the pool is the client's."""
