"""Redis clients from ``REDIS_URL``: a plain server, or a master found through Sentinel.

- ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``): one server.
- ``redis+sentinel://[:password@]host1:26379,host2:26379/<master>[/<db>]``: Redis Sentinel.
  The client asks the sentinels which server is the master of ``<master>`` and reconnects to
  the new master after a failover (redis-py's ``SentinelConnectionPool``). The password is
  the master's; the sentinels themselves are reached without one.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

from controller.urls import SENTINEL_SCHEME, parse_sentinel_url


def client(url: str, *, timeout: float = 1.0, max_connections: int = 64,
           health_check_interval: int = 10, decode_responses: bool = True) -> aioredis.Redis:
    """A client for ``url`` (see the module docstring). Plain servers get a bounded pool that
    waits up to ``timeout`` for a free connection instead of failing past the limit."""
    if urlsplit(url).scheme == SENTINEL_SCHEME:
        su = parse_sentinel_url(url)
        # redis-py's Sentinel API has no annotations
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(su.sentinels), socket_timeout=timeout, socket_connect_timeout=timeout)
        master: aioredis.Redis = sentinel.master_for(
            su.master, db=su.db, password=su.password, username=su.username,
            max_connections=max_connections, socket_timeout=timeout,
            socket_connect_timeout=timeout, health_check_interval=health_check_interval,
            decode_responses=decode_responses)
        master.callctl_sentinel = sentinel  # type: ignore[attr-defined]  # closed by aclose()
        return master
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=timeout, socket_timeout=timeout,
        socket_connect_timeout=timeout, health_check_interval=health_check_interval,
        decode_responses=decode_responses)
    return aioredis.Redis.from_pool(pool)


async def aclose(client: aioredis.Redis) -> None:
    """Close ``client`` and, for a Sentinel client, its connections to the sentinels."""
    await client.aclose()
    sentinel: Sentinel | None = getattr(client, "callctl_sentinel", None)
    if sentinel is not None:
        for s in sentinel.sentinels:
            await s.aclose()
