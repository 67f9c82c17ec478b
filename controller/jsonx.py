"""JSON for the hot path: orjson when it is importable, else the standard library's json.

``loads`` takes str or bytes; ``dumps`` returns str, ``dumpb`` bytes (REST bodies). Both
backends give the same data back (orjson writes compact JSON with non-ASCII as UTF-8, json
``", "``/``": "`` and ``\\uXXXX`` escapes: equal once parsed). ``CALLCTL_JSON=orjson|json``
forces one (default: orjson if installed). ``BACKEND`` names the one in use; a bad value
leaves the default in use and its message in ``CONFIG_ERROR`` (`callctl run` stops on it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

__all__ = ["BACKEND", "CHOICES", "CONFIG_ERROR", "backend", "dumpb", "dumps", "loads", "pick"]

CHOICES = ("orjson", "json")


def pick(choice: str = "") -> str:
    """The backend for ``CALLCTL_JSON``'s value: ``""`` = orjson if importable, else json.
    ValueError (naming the variable) for an unknown value or a forced orjson that is missing."""
    choice = choice.strip().lower()
    if choice not in ("", *CHOICES):
        raise ValueError(f"CALLCTL_JSON has value {choice!r}: use orjson or json "
                         "(or leave unset)")
    if choice == "json":
        return "json"
    try:
        import orjson  # noqa: F401
    except ImportError:
        if choice == "orjson":
            raise ValueError("CALLCTL_JSON has value 'orjson' but orjson is not installed"
                             ) from None
        return "json"
    return "orjson"


def _std() -> tuple[Callable[[str | bytes], Any], Callable[..., str], Callable[..., bytes]]:
    std_loads = json.loads
    std_dumps = json.dumps

    def dumps(obj: Any, *, default: Callable[[Any], Any] | None = None) -> str:
        return std_dumps(obj, default=default)

    def dumpb(obj: Any, *, default: Callable[[Any], Any] | None = None) -> bytes:
        return std_dumps(obj, default=default).encode()

    return std_loads, dumps, dumpb


def _orjson() -> tuple[Callable[[str | bytes], Any], Callable[..., str], Callable[..., bytes]]:
    import orjson

    o_dumps = orjson.dumps
    opts = orjson.OPT_NON_STR_KEYS  # {1: x} -> {"1": x}, as json does

    def dumps(obj: Any, *, default: Callable[[Any], Any] | None = None) -> str:
        return o_dumps(obj, default=default, option=opts).decode()

    def dumpb(obj: Any, *, default: Callable[[Any], Any] | None = None) -> bytes:
        return o_dumps(obj, default=default, option=opts)

    return orjson.loads, dumps, dumpb


def backend(name: str) -> tuple[Callable[[str | bytes], Any], Callable[..., str],
                                Callable[..., bytes]]:
    """``(loads, dumps, dumpb)`` of backend ``name`` (from :func:`pick`)."""
    return _orjson() if name == "orjson" else _std()


def _from_env() -> tuple[str, str]:
    try:
        return pick(os.environ.get("CALLCTL_JSON", "")), ""
    except ValueError as e:  # `callctl run` refuses to start on it (CONFIG_ERROR)
        return pick(), str(e)


BACKEND, CONFIG_ERROR = _from_env()
loads, dumps, dumpb = backend(BACKEND)
