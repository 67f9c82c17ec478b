"""What every operation runs over, and the Redis-error decorator."""
from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from redis.exceptions import RedisError

from controller.adapters.redis import StoreUnavailable
from controller.ops.errors import OpsError

AUDIT_MAXLEN = 10_000
MAX_LIMIT = 100_000


P = ParamSpec("P")
T = TypeVar("T")


def _redis_errors(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except StoreUnavailable as e:
            raise OpsError(503, str(e)) from None
        except (RedisError, OSError) as e:
            raise OpsError(503, f"redis unavailable: {e.__class__.__name__}") from None

    return wrapper
