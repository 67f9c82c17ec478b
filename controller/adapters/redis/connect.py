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
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from controller.adapters.redis.mux import Endpoint, RedisMux
from controller.urls import SENTINEL_SCHEME, parse_sentinel_url


def client(url: str, *, timeout: float = 1.0, max_connections: int = 64,
           health_check_interval: int = 10, decode_responses: bool = True) -> aioredis.Redis:
    """A client for ``url`` (see the module docstring). Plain servers get a bounded pool that
    waits up to ``timeout`` for a free connection instead of failing past the limit."""
    opts = {"socket_timeout": timeout, "socket_connect_timeout": timeout,
            "health_check_interval": health_check_interval,
            "decode_responses": decode_responses}
    if urlsplit(url).scheme == SENTINEL_SCHEME:
        su = parse_sentinel_url(url)
        sentinel = Sentinel(list(su.sentinels), socket_timeout=timeout,
                            socket_connect_timeout=timeout)
        master = sentinel.master_for(su.master, db=su.db, password=su.password,
                                     username=su.username, max_connections=max_connections,
                                     **opts)
        master.callctl_sentinel = sentinel  # type: ignore[attr-defined]  # closed by aclose()
        return master
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=max_connections,
                                                    timeout=timeout, **opts)
    return aioredis.Redis.from_pool(pool)


async def aclose(client: aioredis.Redis) -> None:
    """Close ``client`` and, for a Sentinel client, its connections to the sentinels."""
    await client.aclose()
    sentinel: Sentinel | None = getattr(client, "callctl_sentinel", None)
    if sentinel is not None:
        for s in sentinel.sentinels:
            await s.aclose()


def mux_for(client: aioredis.Redis, *, timeout: float = 1.0) -> RedisMux:
    """A pipelined connection (``controller.adapters.redis.mux``) to the server ``client`` talks to:
    the same address, credentials and database; for Sentinel, the master the sentinels name
    at each (re)connect."""
    pool = client.connection_pool
    kw = pool.connection_kwargs
    db, user, password = int(kw.get("db") or 0), kw.get("username"), kw.get("password")
    if isinstance(pool, SentinelConnectionPool):
        async def master() -> Endpoint:
            host, port = await pool.get_master_address()
            return Endpoint(host=host, port=int(port), db=db, username=user,
                            password=password)

        return RedisMux(master, timeout=timeout)
    cls = pool.connection_class
    if issubclass(cls, UnixDomainSocketConnection):
        ep = Endpoint(path=kw["path"], db=db, username=user, password=password)
    else:
        ep = Endpoint(host=kw.get("host", "127.0.0.1"), port=int(kw.get("port", 6379)),
                      tls=issubclass(cls, SSLConnection), db=db, username=user,
                      password=password)
    return RedisMux(ep, timeout=timeout)
