"""The event loop `callctl run` runs on: uvloop when it is importable, else asyncio's own.

``CALLCTL_LOOP=uvloop|asyncio`` forces one (default: uvloop if installed).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["CHOICES", "loop_factory", "pick", "run"]

CHOICES = ("uvloop", "asyncio")
T = TypeVar("T")


def pick(choice: str = "") -> str:
    """The loop for ``CALLCTL_LOOP``'s value: ``""`` = uvloop if importable, else asyncio.
    ValueError (naming the variable) for an unknown value or a forced uvloop that is missing."""
    choice = choice.strip().lower()
    if choice not in ("", *CHOICES):
        raise ValueError(f"CALLCTL_LOOP has value {choice!r}: use uvloop or asyncio "
                         "(or leave unset)")
    if choice == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if choice == "uvloop":
            raise ValueError("CALLCTL_LOOP has value 'uvloop' but uvloop is not installed"
                             ) from None
        return "asyncio"
    return "uvloop"


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What ``asyncio.Runner(loop_factory=...)`` takes for ``name`` (None: asyncio's)."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


def run(main: Coroutine[Any, Any, T], choice: str | None = None) -> T:
    """``asyncio.run(main)`` on the chosen loop (default: ``$CALLCTL_LOOP``)."""
    try:
        name = pick(os.environ.get("CALLCTL_LOOP", "") if choice is None else choice)
    except ValueError:
        main.close()  # never started: no "never awaited" warning
        raise
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        return runner.run(main)
