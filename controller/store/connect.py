"""Redis clients from ``REDIS_URL``: a plain server, or a master found through Sentinel.

- ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``): one server.
- ``redis+sentinel://[:password@]host1:26379,host2:26379/<master>[/<db>]``: Redis Sentinel.
  The client asks the sentinels which server is the master of ``<master>`` and reconnects to
  the new master after a failover (redis-py's ``SentinelConnectionPool``). The password is
  the master's; the sentinels themselves are reached without one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

SENTINEL_SCHEME = "redis+sentinel"


@dataclass(frozen=True)
class SentinelUrl:
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    password: str | None = field(default=None, repr=False)
    username: str | None = None


def parse_sentinel_url(url: str) -> SentinelUrl:
    """``redis+sentinel://[user:pass@]h1:p1,h2:p2/<master>[/<db>]``; ValueError if malformed."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise ValueError(f"not a {SENTINEL_SCHEME}:// URL")
    netloc = parts.netloc
    user = password = None
    if "@" in netloc:
        cred, netloc = netloc.rsplit("@", 1)
        user, _, password = cred.partition(":")
        user, password = unquote(user) or None, unquote(password) or None
    hosts: list[tuple[str, int]] = []
    for item in netloc.split(","):
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"sentinel address {item!r} is not host:port")
        hosts.append((host, int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError("give the master's name as the path: .../<master>[/<db>]")
    db = path[1] if len(path) == 2 else "0"
    if not db.isdigit():
        raise ValueError(f"database {db!r} is not a number")
    return SentinelUrl(tuple(hosts), path[0], int(db), password, user)


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
