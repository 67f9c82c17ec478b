"""What every operation runs over (:class:`Context`), and the Redis-error decorator."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from redis.exceptions import RedisError

from controller.adapters.redis import RedisStore, StoreUnavailable
from controller.adapters.redis.keys import Keys
from controller.ops.errors import OpsError

if TYPE_CHECKING:
    from controller.config import Settings
    from controller.shell.runtime import Controller

MAX_LIMIT = 100_000
"""The most rows one listing returns (``limit``)."""


@dataclass
class Context:
    """The operations' state: one RedisStore, the settings (None: nothing configured) and
    ``controller``, the running Controller when the admin API runs inside it (its live flows
    and ARI/AMI state are used; None in the CLI). One per CLI command or admin server."""

    store: RedisStore
    settings: Settings | None = None
    controller: Controller | None = None
    devices: tuple[float, dict[str, Mapping[str, str]] | None] | None = field(
        default=None, repr=False)
    """When the phones' states were read from AMI, and them (:func:`controller.ops.users.devices`
    caches them)."""
    p: str = field(init=False, repr=False)
    """The Redis key prefix."""
    r: Any = field(init=False, repr=False)
    """The Redis client."""
    keys: Keys = field(init=False, repr=False)
    """Every Redis key name (controller.adapters.redis.keys)."""

    def __post_init__(self) -> None:
        self.p = self.store.p
        self.r = self.store.redis
        self.keys = Keys(self.p)


P = ParamSpec("P")
T = TypeVar("T")


def redis_errors(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """An operation whose Redis is down or away raises OpsError(503)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except StoreUnavailable as e:
            raise OpsError(503, str(e)) from None
        except (RedisError, OSError) as e:
            raise OpsError(503, f"redis unavailable: {e.__class__.__name__}") from None

    return wrapper
