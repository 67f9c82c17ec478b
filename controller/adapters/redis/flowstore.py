"""Published flow versions in Redis: publish, roll back, load the live one.

Keys (``prefix`` default ``callctl:``):

=============================  ==============================================================
``flows:version``              counter: the last version number handed out (INCR)
``flows:v:<n>``                JSON ``{version, published_at, source_files: {name: text},
                               flowset: <FlowSet.model_dump(mode="json")>}``; never changed
``flows:meta``                 hash ``<n>`` -> JSON ``{version, published_at, files, flows,
                               dids, sha256}`` (for listings without loading every version)
``flows:live``                 the version calls are routed on
``flows:published``            pub/sub channel: the new live version number
=============================  ==============================================================

A publish or rollback changes ``flows:live`` and announces it in one Lua script, so readers
never see a live number without its document. Versions are immutable; a rollback only moves
``flows:live``.

A publish whose content (:func:`content_hash`: the flow set and the files' texts by file name)
is the live version's makes no new version and announces nothing (``unchanged``); one made
``if_empty`` (a controller's start) publishes only when no version is live (``kept``
otherwise). Both checks run inside the publish script, so two controllers starting at once
cannot both publish.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from pydantic import ValidationError

from controller.adapters.redis.keys import DEFAULT_PREFIX, Keys
from controller.core.flows.loader import LoadResult, Problem
from controller.core.flows.schema import FlowSet

__all__ = [
    "DEFAULT_PREFIX",
    "PublishRejected",
    "Published",
    "RollbackError",
    "VersionInfo",
    "content_hash",
    "list_versions",
    "load_live",
    "load_version",
    "publish",
    "publish_flows",
    "rollback",
]

log = logging.getLogger("callctl.flows")


# KEYS[1] flows:version  KEYS[2] flows:live  KEYS[3] flows:meta
# ARGV[1] prefix of version keys ("callctl:flows:v:")  ARGV[2] channel
# ARGV[3] the document without its leading '{' (its "version" is put in front here)
# ARGV[4] the meta JSON without its leading '{'  ARGV[5] its content hash
# ARGV[6] "if_empty": publish only when no version is live
# Returns {version live now, "published" | "unchanged" (the live version has this content) |
# "kept" (if_empty and a version is live)}.
PUBLISH_SCRIPT = """
local live = redis.call('GET', KEYS[2])
if live then
  if ARGV[6] == 'if_empty' then
    return {tonumber(live), 'kept'}
  end
  local meta = redis.call('HGET', KEYS[3], live)
  if meta then
    local ok, doc = pcall(cjson.decode, meta)
    if ok and type(doc) == 'table' and doc['sha256'] == ARGV[5] then
      return {tonumber(live), 'unchanged'}
    end
  end
end
local v = redis.call('INCR', KEYS[1])
redis.call('SET', ARGV[1] .. v, '{"version": ' .. v .. ', ' .. ARGV[3])
redis.call('HSET', KEYS[3], tostring(v), '{"version": ' .. v .. ', ' .. ARGV[4])
redis.call('SET', KEYS[2], v)
redis.call('PUBLISH', ARGV[2], v)
return {v, 'published'}
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
class Published:
    """What a publish did: ``status`` is ``published`` (``version`` is new), ``unchanged``
    (the live ``version`` already has this content) or ``kept`` (``if_empty``: ``version``
    was live, nothing published)."""

    version: int
    status: str
    sha256: str

    @property
    def created(self) -> bool:
        return self.status == "published"


@dataclass(frozen=True, slots=True)
class VersionInfo:
    version: int
    published_at: float
    files: tuple[str, ...]
    flows: int
    dids: int
    live: bool
    sha256: str = ""


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


def content_hash(result: LoadResult) -> str:
    """SHA-256 of what a version holds: the flow set and each file's text under its base name
    (the same directory published from another path, or through the admin API, hashes the
    same; a comment-only change does not)."""
    if result.flowset is None:
        raise ValueError("no flow set to hash")
    files = sorted((PurePath(name).name, text) for name, text in result.sources.items())
    doc = json.dumps({"flowset": result.flowset.model_dump(mode="json"), "files": files},
                     sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(doc.encode()).hexdigest()


async def publish_flows(
    redis: Any, result: LoadResult, *, prefix: str = DEFAULT_PREFIX,
    now: float | None = None, if_empty: bool = False,
) -> Published:
    """Make ``result``'s flow set the live version, unless the live version has the same
    content (``unchanged``) or, with ``if_empty``, any version is live (``kept``). Raises
    :class:`PublishRejected` (and changes nothing) when it has errors."""
    if result.errors or result.flowset is None:
        raise PublishRejected(list(result.errors))
    keys = Keys(prefix)
    fs = result.flowset
    digest = content_hash(result)
    published_at = time.time() if now is None else now
    body = json.dumps(
        {"published_at": published_at, "sha256": digest, "source_files": result.sources,
         "flowset": fs.model_dump(mode="json")},
        separators=(",", ":"), ensure_ascii=False,
    )
    meta = json.dumps(
        {"published_at": published_at, "files": sorted(result.sources),
         "flows": len(fs.flows), "dids": len(fs.did_map), "sha256": digest},
        separators=(",", ":"),
    )
    script = redis.register_script(PUBLISH_SCRIPT)
    version, status = await script(
        keys=[keys.flows_version, keys.flows_live, keys.flows_meta],
        args=[keys.flows_v, keys.flows_published, body[1:], meta[1:], digest,
              "if_empty" if if_empty else "always"],
    )
    out = Published(int(version), _text(status) or "published", digest)
    if out.created:
        log.info("flows: published version %s (%d flows, %d DIDs)", out.version,
                 len(fs.flows), len(fs.did_map))
    elif out.status == "unchanged":
        log.info("flows: version %s is live with the same content: nothing published",
                 out.version)
    else:
        log.info("flows: version %s is live: not replaced (publish only if nothing is)",
                 out.version)
    return out


async def publish(
    redis: Any, result: LoadResult, *, prefix: str = DEFAULT_PREFIX,
    now: float | None = None,
) -> int:
    """:func:`publish_flows`; returns the version live afterwards (the live one when the
    content is unchanged)."""
    return (await publish_flows(redis, result, prefix=prefix, now=now)).version


async def load_version(redis: Any, version: int, *, prefix: str = DEFAULT_PREFIX) -> FlowSet:
    """The flow set of a stored version. Raises LookupError (absent) or ValueError (it does
    not validate with this code)."""
    raw = _text(await redis.get(Keys(prefix).flow(version)))
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
    live = _int(await redis.get(Keys(prefix).flows_live))
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
    keys = Keys(prefix)
    live = _int(await redis.get(keys.flows_live))
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
    ok = await script(keys=[keys.flows_live, keys.flow(version)],
                      args=[str(version), keys.flows_published])
    if not int(ok):
        raise RollbackError(f"no flow version {version}")
    log.info("flows: rolled back to version %d (was %s)", version, live)
    return version


async def list_versions(redis: Any, *, prefix: str = DEFAULT_PREFIX) -> list[VersionInfo]:
    """Every published version, oldest first."""
    keys = Keys(prefix)
    live = _int(await redis.get(keys.flows_live))
    raw: dict[Any, Any] = await redis.hgetall(keys.flows_meta)
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
            sha256=str(meta.get("sha256") or ""),
        ))
    return sorted(out, key=lambda i: i.version)
