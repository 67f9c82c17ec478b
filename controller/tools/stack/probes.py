"""Readiness probes: does Redis (with our password), Asterisk's ARI, its AMI answer?"""

from __future__ import annotations

import base64
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from controller.config import Settings
from controller.tools.stack.conf import (
    redis_credentials,
)


def redis_probe(url: str, timeout: float = 0.5) -> str:
    """``"ok"`` (PONG with the URL's credentials), ``"auth"`` (answers but refuses them or
    wants others) or ``"down"``. Sentinel URLs (several hosts): ``"down"`` (not probed)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.exceptions import (
        AuthenticationError,
        AuthenticationWrongNumberOfArgsError,
        RedisError,
        ResponseError,
    )
    from redis.retry import Retry

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # redis+sentinel://h1:p1,h2:p2/...: not a server we start or probe
        return "down"
    user, password = redis_credentials(url)
    # RESP2: a plain AUTH, which a Redis without a password refuses (an older Redis of ours,
    # from before requirepass: `stack up` must say so); RESP3's HELLO would accept any
    # One attempt: redis-py 6+ retries a refused connection 3 times with backoff by default
    # (about 2.4 s of sleeps), which made every `stack up` of a stopped Redis wait ~5 s.
    client = redis.Redis(host=parts.hostname or "127.0.0.1", port=port or 6379,
                         username=user or None, password=password or None, protocol=2,
                         socket_timeout=timeout, socket_connect_timeout=timeout,
                         retry=Retry(NoBackoff(), 0))
    try:
        return "ok" if client.ping() else "down"
    # refused credentials, or none given where some are wanted (NOAUTH), or ours given to a
    # Redis without a password
    except (AuthenticationError, AuthenticationWrongNumberOfArgsError):
        return "auth"
    except ResponseError as e:
        return "auth" if "auth" in str(e).lower() else "down"
    except (RedisError, OSError):  # nothing there, or not Redis
        return "down"
    finally:
        client.close()


def redis_ping(url: str, timeout: float = 0.5) -> bool:
    return redis_probe(url, timeout) == "ok"


def ari_ping(settings: Settings, timeout: float = 1.0) -> tuple[bool, str]:
    """(ok, detail). Detail is an Asterisk version or the reason it failed."""
    req = urllib.request.Request(f"{settings.ari_url}/ari/asterisk/info")
    token = base64.b64encode(f"{settings.ari_user}:{settings.ari_password}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            import json

            info = json.loads(resp.read() or b"{}")
            return True, info.get("system", {}).get("version", "?")
    except urllib.error.HTTPError as e:
        return False, f"HTTP {e.code}" + (" (wrong ARI credentials?)" if e.code == 401 else "")
    except (OSError, ValueError) as e:
        return False, str(getattr(e, "reason", e))


def ami_ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when an Asterisk manager interface greets on ``host:port`` (no login)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            return s.recv(64).startswith(b"Asterisk Call Manager")
    except OSError:
        return False
