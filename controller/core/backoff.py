"""Retry delays as pure strategy objects (in the style of ``redis.backoff``).

``compute(failures)`` returns how long to wait after ``failures`` consecutive failures
(0 for the first retry). No event loop, no state: the caller counts failures.
"""

from __future__ import annotations

import random
from typing import Literal, Protocol, runtime_checkable

__all__ = ["Backoff", "ConstantBackoff", "ExponentialBackoff", "NoBackoff"]

# 2**63 already exceeds any sensible cap/base ratio; larger exponents would only risk overflow.
_MAX_EXPONENT = 63


@runtime_checkable
class Backoff(Protocol):
    def compute(self, failures: int) -> float:
        """Seconds to wait before the next attempt after ``failures`` consecutive failures."""
        ...


class NoBackoff:
    """Retry at once."""

    def compute(self, failures: int) -> float:
        return 0.0

    def __repr__(self) -> str:
        return "NoBackoff()"


class ConstantBackoff:
    """Always the same delay."""

    def __init__(self, delay: float) -> None:
        if delay < 0:
            raise ValueError("delay must be >= 0")
        self.delay = float(delay)

    def compute(self, failures: int) -> float:
        return self.delay

    def __repr__(self) -> str:
        return f"ConstantBackoff({self.delay})"


class ExponentialBackoff:
    """``min(cap, base * 2**failures)``, optionally jittered.

    ``jitter`` False: exactly that value. ``jitter`` True with ``mode="full"`` (default): uniform
    in [0, value] (AWS "full jitter"); ``mode="equal"``: uniform in [value/2, value].
    ``rng`` makes it deterministic in tests.
    """

    __slots__ = ("_rng", "base", "cap", "jitter", "mode")

    def __init__(self, base: float, cap: float, jitter: bool = True, *,
                 mode: Literal["full", "equal"] = "full",
                 rng: random.Random | None = None) -> None:
        if base < 0 or cap < 0:
            raise ValueError("base and cap must be >= 0")
        if mode not in ("full", "equal"):
            raise ValueError("mode must be 'full' or 'equal'")
        self.base = float(base)
        self.cap = float(cap)
        self.jitter = jitter
        self.mode = mode
        self._rng = rng if rng is not None else random.Random()

    def ceiling(self, failures: int) -> float:
        """The un-jittered delay: ``min(cap, base * 2**failures)``."""
        n = max(0, failures)
        if n >= _MAX_EXPONENT:
            return self.cap
        return min(self.cap, self.base * (1 << n))

    def compute(self, failures: int) -> float:
        d = self.ceiling(failures)
        if not self.jitter or d == 0.0:
            return d
        if self.mode == "equal":
            half = d / 2
            return half + self._rng.uniform(0.0, half)
        return self._rng.uniform(0.0, d)

    def __repr__(self) -> str:
        return (f"ExponentialBackoff(base={self.base}, cap={self.cap}, jitter={self.jitter}, "
                f"mode={self.mode!r})")
