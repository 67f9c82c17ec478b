"""Shared state (Redis). See ``redis_store.RedisStore`` for the keys and their TTLs."""

from controller.store.redis_store import RedisStore, StoreUnavailable

__all__ = ["RedisStore", "StoreUnavailable"]
