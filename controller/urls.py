"""URL syntax shared by the settings (``controller.config``) and the adapters that use the URLs:
webhook endpoints and Redis Sentinel addresses. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

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


def safe_url(url: str) -> str:
    """A URL for logs: no credentials, no query string (tokens live there)."""
    p = urlsplit(url)
    port = f":{p.port}" if p.port else ""
    return f"{p.scheme}://{p.hostname}{port}{p.path}"


def check_url(url: str) -> str:
    """An http(s) URL with a host, or ValueError naming it (without its query)."""
    p = urlsplit(url)
    if p.scheme not in ("http", "https") or not p.hostname:
        raise ValueError(f"{safe_url(url) if p.hostname else url!r} is not an http(s) URL")
    return url


def parse_urls(raw: str) -> tuple[str, ...]:
    """Whitespace/comma separated URLs, each checked."""
    return tuple(check_url(u) for u in raw.replace(",", " ").split())
