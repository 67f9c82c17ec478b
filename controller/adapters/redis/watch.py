"""Follow a Redis-published piece of state: wake on a pub/sub message, poll as a fallback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError


async def watch(redis: Any, channels: tuple[str, ...], poll: float,
                refresh: Callable[[], Awaitable[Any]]) -> None:
    """Call ``refresh()`` at most ``poll`` seconds apart, and at once when a message arrives on
    ``channels``. A lost or failed subscription (Redis down) falls back to polling until it
    can subscribe again. Runs until cancelled; ``refresh`` handles its own errors."""
    while True:
        pubsub = redis.pubsub()
        try:
            await pubsub.subscribe(*channels)
            while True:
                await pubsub.get_message(ignore_subscribe_messages=True, timeout=poll)
                await refresh()
        except (RedisError, OSError):
            await asyncio.sleep(poll)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
