"""Redis: the store, Lua scripts (leases, call end), flow versions, change watches.
See ``store.RedisStore`` for the keys and their TTLs."""

from controller.adapters.redis.store import RedisStore, StoreUnavailable

__all__ = ["RedisStore", "StoreUnavailable"]
