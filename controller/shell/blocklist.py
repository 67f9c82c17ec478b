"""Blocked callers: pure matching, and the in-memory copy the runtime checks on every call.

A pattern is one of:

* a number (``+15551234567``, ``0044 20 7946 0000``): blocks exactly that caller;
* a prefix ending in ``*`` (``+1900*``): blocks every caller whose number starts with it;
* ``withheld``: blocks callers without a (valid) caller ID.

Numbers are normalised like caller IDs (:func:`controller.core.callerid.normalise`: spaces, dots,
dashes and parentheses dropped, ``00`` -> ``+``) and compared on their digits, so ``+1555...``
and ``1555...`` are the same number. An exact entry wins over prefixes; among prefixes the
longest wins (its reason and counter are the ones reported).

Storage (prefix ``callctl:``): ``blocklist`` hash pattern -> JSON ``{reason, by, at}``;
``blocklist:hits`` hash pattern -> rejected attempts; ``blocklist:version`` counter bumped on
every change (the cache reloads when it moves; a 1 s poll, plus pub/sub ``blocklist:changed``).
The cache keeps the last list it read, so blocking works while Redis is briefly down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from controller.adapters.redis.keys import Keys
from controller.adapters.redis.watch import watch
from controller.core.patterns import DID_RE as _EXACT
from controller.core.patterns import NUMBER_PREFIX_RE as _PREFIX
from controller.core.patterns import PHONE_JUNK as _JUNK

__all__ = [
    "WITHHELD",
    "Blocklist",
    "BlocklistCache",
    "PatternError",
    "normalise_pattern",
]

log = logging.getLogger("callctl.blocklist")

WITHHELD = "withheld"
_WITHHELD_ALIASES = frozenset({"withheld", "anonymous", "unknown", "private", "restricted"})
BLOCK_CAUSE = 21
"""Q.850 cause a blocked call is rejected with (call rejected: SIP 403 Forbidden)."""


class PatternError(ValueError):
    """Not a number, a ``prefix*`` or ``withheld``."""


def normalise_pattern(text: str) -> str:
    """The canonical form of a blocklist pattern, or PatternError."""
    s = (text or "").strip()
    if s.lower() in _WITHHELD_ALIASES:
        return WITHHELD
    prefix = s.endswith("*")
    s = _JUNK.sub("", s[:-1] if prefix else s)
    if s.startswith("00") and len(s) > 2:
        s = "+" + s[2:]
    if prefix:
        if not _PREFIX.fullmatch(s):
            raise PatternError(f"{text!r} is not a number prefix (e.g. '+1900*')")
        return s + "*"
    if not _EXACT.fullmatch(s):
        raise PatternError(
            f"{text!r} is not a phone number, a prefix ending in '*' or 'withheld'")
    return s


def _digits(number: str) -> str:
    return number.lstrip("+")


@dataclass(frozen=True)
class Blocklist:
    """An immutable matcher over ``{pattern: entry}``."""

    entries: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    _exact: dict[str, str] = field(init=False, repr=False, compare=False)
    """Digits -> the exact pattern (made from ``entries``)."""
    _prefixes: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)
    """(digits, prefix pattern), longest first."""

    def __post_init__(self) -> None:
        exact: dict[str, str] = {}
        prefixes: list[tuple[str, str]] = []
        for pat in self.entries:
            if pat == WITHHELD:
                continue
            if pat.endswith("*"):
                prefixes.append((_digits(pat[:-1]), pat))
            else:
                exact.setdefault(_digits(pat), pat)
        prefixes.sort(key=lambda p: len(p[0]), reverse=True)
        object.__setattr__(self, "_exact", exact)
        object.__setattr__(self, "_prefixes", tuple(prefixes))

    def match(self, caller: str) -> str | None:
        """The pattern blocking ``caller`` (a normalised caller number, '' if withheld)."""
        if not caller:
            return WITHHELD if WITHHELD in self.entries else None
        d = _digits(caller)
        hit = self._exact.get(d)
        if hit is not None:
            return hit
        for pdigits, pat in self._prefixes:
            if d.startswith(pdigits):
                return pat
        return None

    def __len__(self) -> int:
        return len(self.entries)


def parse_entries(raw: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for pat, body in raw.items():
        try:
            entry = json.loads(body)
        except ValueError:
            entry = {}
        out[pat] = entry if isinstance(entry, dict) else {}
    return out


class BlocklistCache:
    """The blocklist as last read from Redis, kept current within a second."""

    def __init__(self, redis: Any, prefix: str, poll: float = 1.0) -> None:
        self.redis = redis
        self.prefix = prefix
        self.keys = Keys(prefix)
        self.poll = poll
        self.current = Blocklist()
        self.version: str | None = None
        self._task: asyncio.Task[None] | None = None

    def match(self, caller: str) -> str | None:
        return self.current.match(caller)

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def refresh(self) -> bool:
        """Reload if the list changed. True if it changed; Redis errors keep the old list."""
        try:
            version = await self.redis.get(self.keys.blocklist_version)
            if isinstance(version, bytes):
                version = version.decode()
            version = version or "0"
            if version == self.version:
                return False
            raw = await self.redis.hgetall(self.keys.blocklist)
        except (RedisError, OSError) as e:
            log.warning("blocklist: cannot read (%s); keeping %d entries",
                        e.__class__.__name__, len(self.current))
            return False
        raw = {(k.decode() if isinstance(k, bytes) else k):
               (v.decode() if isinstance(v, bytes) else v) for k, v in raw.items()}
        self.current = Blocklist(parse_entries(raw))
        self.version = version
        log.info("blocklist: %d entries", len(self.current))
        return True

    async def _watch(self) -> None:
        await watch(self.redis, (self.keys.blocklist_changed,), self.poll, self.refresh)
