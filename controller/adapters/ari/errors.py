"""ARI errors: one exception class per kind of answer Asterisk gives.

Asterisk answers errors with a JSON body ``{"message": "..."}``; that text becomes ``.message``.
Messages carry the method and the path (never a query string, never credentials).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "AriError",
    "AriUnavailable",
    "BadRequest",
    "Conflict",
    "NotFound",
    "PreconditionFailed",
    "ServerError",
    "Unauthorized",
    "Unprocessable",
    "error_for",
]

_MAX_MESSAGE = 300


class AriError(Exception):
    """Asterisk answered an ARI request with a non-2xx status (AriUnavailable: not at all)."""

    def __init__(self, status: int, method: str, path: str, message: str = "") -> None:
        self.status = status
        self.method = method
        self.path = path
        self.message = message
        super().__init__(status, method, path, message)

    def __str__(self) -> str:
        msg = f": {self.message}" if self.message else ""
        return f"{self.method} {self.path}: HTTP {self.status}{msg}"

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(status={self.status}, method={self.method!r}, "
                f"path={self.path!r}, message={self.message!r})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.status, self.method, self.path, self.message))


class BadRequest(AriError):
    """400: invalid parameters."""


class Unauthorized(AriError):
    """401: wrong ARI user or password."""


class NotFound(AriError):
    """404: the channel/bridge/playback is gone (for channels: a hangup race; callers catch it)."""


class Conflict(AriError):
    """409: e.g. channel not in a Stasis application, id already exists."""


class PreconditionFailed(AriError):
    """412: the channel is in a state that does not allow the operation (e.g. not answered)."""


class Unprocessable(AriError):
    """422: e.g. unknown endpoint technology, unknown recording format."""


class ServerError(AriError):
    """5xx: Asterisk failed internally."""


class AriUnavailable(AriError):
    """No HTTP answer at all: connection refused/reset, or timeout. ``status`` is 0."""

    def __init__(self, method: str, path: str, message: str = "") -> None:
        super().__init__(0, method, path, message)

    def __str__(self) -> str:
        msg = f" ({self.message})" if self.message else ""
        return f"{self.method} {self.path}: ARI unavailable{msg}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.method, self.path, self.message))


_BY_STATUS: dict[int, type[AriError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    422: Unprocessable,
}


def message_of(body: Any) -> str:
    """The ``message`` of an Asterisk error body (dict, JSON text/bytes), else a short text."""
    if body is None:
        return ""
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body).decode("utf-8", "replace")
    if isinstance(body, str):
        text = body.strip()
        if not text:
            return ""
        if text[0] == "{":
            try:
                body = json.loads(text)
            except ValueError:
                return text[:_MAX_MESSAGE]
        else:
            return text[:_MAX_MESSAGE]
    if isinstance(body, dict):
        msg = body.get("message")
        if msg is None:
            msg = body.get("error", "")
        return str(msg)[:_MAX_MESSAGE]
    return str(body)[:_MAX_MESSAGE]


def error_for(status: int, method: str, path: str, body: Any = None) -> AriError:
    """The exception for an HTTP error answer. ``path`` must not include the query string."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else AriError
    path = path.split("?", 1)[0]
    return cls(status, method.upper(), path, message_of(body))
