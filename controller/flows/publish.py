"""Published flow versions in Redis: publish, roll back, load the live one.

Keys (``prefix`` default ``callctl:``):

=============================  ==============================================================
``flows:version``              counter: the last version number handed out (INCR)
``flows:v:<n>``                JSON ``{version, published_at, source_files: {name: text},
                               flowset: <FlowSet.model_dump(mode="json")>}``; never changed
``flows:meta``                 hash ``<n>`` -> JSON ``{version, published_at, files, flows,
                               dids}`` (for listings without loading every version)
``flows:live``                 the version calls are routed on
``flows:published``            pub/sub channel: the new live version number
=============================  ==============================================================

A publish or rollback changes ``flows:live`` and announces it in one Lua script, so readers
never see a live number without its document. Versions are immutable; a rollback only moves
``flows:live``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from controller.flows.loader import LoadResult, Problem
from controller.flows.schema import FlowSet

__all__ = [
    "DEFAULT_PREFIX",
    "PublishRejected",
    "RollbackError",
    "VersionInfo",
    "list_versions",
    "load_live",
    "load_version",
    "publish",
    "rollback",
]

log = logging.getLogger("callctl.flows")

DEFAULT_PREFIX = "callctl:"

# KEYS[1] flows:version  KEYS[2] flows:live  KEYS[3] flows:meta
# ARGV[1] prefix of version keys ("callctl:flows:v:")  ARGV[2] channel
# ARGV[3] the document without its leading '{' (its "version" is put in front here)
# ARGV[4] the meta JSON without its leading '{'
# Returns the new version number.
PUBLISH_SCRIPT = """
local v = redis.call('INCR', KEYS[1])
redis.call('SET', ARGV[1] .. v, '{"version": ' .. v .. ', ' .. ARGV[3])
redis.call('HSET', KEYS[3], tostring(v), '{"version": ' .. v .. ', ' .. ARGV[4])
redis.call('SET', KEYS[2], v)
redis.call('PUBLISH', ARGV[2], v)
return v
"""

# KEYS[1] flows:live  KEYS[2] flows:v:<n>
# ARGV[1] n  ARGV[2] channel
# Returns 1, or 0 when version n does not exist.
ROLLBACK_SCRIPT = """
if redis.call('EXISTS', KEYS[2]) == 0 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[1])
return 1
"""


class PublishRejected(Exception):
    """The flows have errors; nothing was changed."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} error(s); not published")


class RollbackError(Exception):
    """No such version, or nothing to roll back to."""


@dataclass(frozen=True, slots=True)
class VersionInfo:
    version: int
    published_at: float
    files: tuple[str, ...]
    flows: int
    dids: int
    live: bool


class _Keys:
    def __init__(self, prefix: str) -> None:
        self.counter = f"{prefix}flows:version"
        self.live = f"{prefix}flows:live"
        self.meta = f"{prefix}flows:meta"
        self.version_prefix = f"{prefix}flows:v:"
        self.channel = f"{prefix}flows:published"

    def version(self, n: int) -> str:
        return f"{self.version_prefix}{n}"


def _text(raw: Any) -> str | None:
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _int(raw: Any) -> int | None:
    text = _text(raw)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


async def publish(
    redis: Any, result: LoadResult, *, prefix: str = DEFAULT_PREFIX,
    now: float | None = None,
) -> int:
    """Make ``result``'s flow set the live version. Raises :class:`PublishRejected` (and
    changes nothing) when it has errors. Returns the new version number."""
    if result.errors or result.flowset is None:
        raise PublishRejected(list(result.errors))
    keys = _Keys(prefix)
    fs = result.flowset
    published_at = time.time() if now is None else now
    body = json.dumps(
        {"published_at": published_at, "source_files": result.sources,
         "flowset": fs.model_dump(mode="json")},
        separators=(",", ":"), ensure_ascii=False,
    )
    meta = json.dumps(
        {"published_at": published_at, "files": sorted(result.sources),
         "flows": len(fs.flows), "dids": len(fs.did_map)},
        separators=(",", ":"),
    )
    script = redis.register_script(PUBLISH_SCRIPT)
    version = await script(
        keys=[keys.counter, keys.live, keys.meta],
        args=[keys.version_prefix, keys.channel, body[1:], meta[1:]],
    )
    log.info("flows: published version %s (%d flows, %d DIDs)", version, len(fs.flows),
             len(fs.did_map))
    return int(version)


async def load_version(redis: Any, version: int, *, prefix: str = DEFAULT_PREFIX) -> FlowSet:
    """The flow set of a stored version. Raises LookupError (absent) or ValueError (it does
    not validate with this code)."""
    raw = _text(await redis.get(_Keys(prefix).version(version)))
    if raw is None:
        raise LookupError(f"no flow version {version}")
    try:
        doc = json.loads(raw)
        return FlowSet.model_validate(doc["flowset"])
    except (ValueError, KeyError, TypeError, ValidationError) as e:
        raise ValueError(f"flow version {version} cannot be loaded: {e}") from e


async def load_live(
    redis: Any, *, prefix: str = DEFAULT_PREFIX, if_not: int | None = None
) -> tuple[int, FlowSet] | None:
    """``(version, flow set)`` of the live version; None when nothing is published, when the
    live version is ``if_not`` (unchanged), or when it cannot be loaded (logged: the caller
    keeps what it has). Redis errors propagate."""
    live = _int(await redis.get(_Keys(prefix).live))
    if live is None or live == if_not:
        return None
    try:
        return live, await load_version(redis, live, prefix=prefix)
    except (LookupError, ValueError) as e:
        log.error("flows: live version %s is unusable: %s", live, e)
        return None


async def rollback(
    redis: Any, version: int | None = None, *, prefix: str = DEFAULT_PREFIX
) -> int:
    """Make ``version`` live again (None: the newest version older than the live one).
    The version must still load. Returns the version now live."""
    keys = _Keys(prefix)
    live = _int(await redis.get(keys.live))
    if version is None:
        if live is None:
            raise RollbackError("nothing is published")
        older = [v.version for v in await list_versions(redis, prefix=prefix)
                 if v.version < live]
        if not older:
            raise RollbackError(f"no version older than the live version {live}")
        version = max(older)
    try:
        await load_version(redis, version, prefix=prefix)
    except (LookupError, ValueError) as e:
        raise RollbackError(str(e)) from None
    script = redis.register_script(ROLLBACK_SCRIPT)
    ok = await script(keys=[keys.live, keys.version(version)],
                      args=[str(version), keys.channel])
    if not int(ok):
        raise RollbackError(f"no flow version {version}")
    log.info("flows: rolled back to version %d (was %s)", version, live)
    return version


async def list_versions(redis: Any, *, prefix: str = DEFAULT_PREFIX) -> list[VersionInfo]:
    """Every published version, oldest first."""
    keys = _Keys(prefix)
    live = _int(await redis.get(keys.live))
    raw: dict[Any, Any] = await redis.hgetall(keys.meta)
    out: list[VersionInfo] = []
    for k, v in raw.items():
        n = _int(k)
        text = _text(v)
        if n is None or text is None:
            continue
        try:
            meta = json.loads(text)
        except ValueError:
            meta = {}
        out.append(VersionInfo(
            version=n,
            published_at=float(meta.get("published_at", 0.0)),
            files=tuple(meta.get("files", ())),
            flows=int(meta.get("flows", 0)),
            dids=int(meta.get("dids", 0)),
            live=n == live,
        ))
    return sorted(out, key=lambda i: i.version)
