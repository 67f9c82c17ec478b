"""Readiness probes: does Redis (with our password), Asterisk's ARI, its AMI answer?"""

from __future__ import annotations

import base64
import socket
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from controller.config import Settings
from controller.tools.stack.conf import (
    redis_credentials,
)


def redis_probe(url: str, timeout: float = 0.5) -> str:
    """``"ok"`` (PONG with the URL's credentials), ``"auth"`` (answers but refuses them or
    wants others) or ``"down"``. Sentinel URLs (several hosts): ``"down"`` (not probed)."""
    from controller.adapters.redis.mux import ProtocolError, RespParser, encode

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # redis+sentinel://h1:p1,h2:p2/...: not a server we start or probe
        return "down"
    user, password = redis_credentials(url)
    cmds: list[list[str]] = [["AUTH", user, password] if user else ["AUTH", password]] \
        if password else []
    cmds.append(["PING"])
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port or 6379),
                                      timeout=timeout) as s:
            s.sendall(b"".join(encode(c) for c in cmds))
            parser = RespParser()
            replies: list[Any] = []
            while len(replies) < len(cmds):
                data = s.recv(4096)
                if not data:
                    return "down"
                replies += parser.feed(data)
    except (OSError, ProtocolError):  # nothing there, or not Redis
        return "down"
    # an error reply to AUTH (wrong password, or none set: an older Redis of ours) is "auth"
    # too: the controller's own AUTH would be refused the same way
    return "ok" if replies[-1] == "PONG" and not any(
        isinstance(r, Exception) for r in replies) else "auth"


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
