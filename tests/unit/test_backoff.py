"""Backoff strategies: pure, no event loop."""

from __future__ import annotations

import random

import pytest

from controller.core.backoff import Backoff, ConstantBackoff, ExponentialBackoff, NoBackoff


def test_given_no_jitter_when_failures_grow_then_delay_doubles_up_to_cap() -> None:
    b = ExponentialBackoff(0.05, 5.0, jitter=False)
    assert [b.compute(n) for n in range(9)] == [
        0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]


def test_given_huge_failure_count_then_cap_without_overflow() -> None:
    b = ExponentialBackoff(0.05, 5.0, jitter=False)
    assert b.compute(10_000) == 5.0
    assert b.compute(-3) == 0.05  # negative counts behave like 0


def test_given_full_jitter_then_delay_within_zero_and_ceiling() -> None:
    b = ExponentialBackoff(0.05, 5.0, rng=random.Random(7))
    for n in range(20):
        d = b.compute(n)
        assert 0.0 <= d <= b.ceiling(n)


def test_given_equal_jitter_then_delay_within_half_and_ceiling() -> None:
    b = ExponentialBackoff(1.0, 8.0, mode="equal", rng=random.Random(7))
    for n in range(10):
        d = b.compute(n)
        assert b.ceiling(n) / 2 <= d <= b.ceiling(n)


def test_given_same_seed_then_same_sequence() -> None:
    a = ExponentialBackoff(0.1, 10.0, rng=random.Random(42))
    b = ExponentialBackoff(0.1, 10.0, rng=random.Random(42))
    assert [a.compute(n) for n in range(10)] == [b.compute(n) for n in range(10)]


def test_given_injected_rng_then_it_decides_the_jitter() -> None:
    class Fixed(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b  # always the top of the range

    assert ExponentialBackoff(0.5, 4.0, rng=Fixed()).compute(2) == 2.0
    assert ExponentialBackoff(0.5, 4.0, mode="equal", rng=Fixed()).compute(3) == 4.0


def test_given_zero_base_then_zero_delay_even_with_jitter() -> None:
    assert ExponentialBackoff(0.0, 5.0).compute(3) == 0.0


@pytest.mark.parametrize("args", [(-1.0, 5.0), (0.1, -1.0)])
def test_given_negative_parameters_then_rejected(args: tuple[float, float]) -> None:
    with pytest.raises(ValueError):
        ExponentialBackoff(*args)


def test_given_unknown_mode_then_rejected() -> None:
    with pytest.raises(ValueError):
        ExponentialBackoff(0.1, 1.0, mode="decorrelated")  # type: ignore[arg-type]


def test_simple_strategies_follow_the_protocol() -> None:
    assert NoBackoff().compute(5) == 0.0
    assert ConstantBackoff(0.3).compute(9) == 0.3
    for b in (NoBackoff(), ConstantBackoff(1), ExponentialBackoff(1, 2)):
        assert isinstance(b, Backoff)
    with pytest.raises(ValueError):
        ConstantBackoff(-1)
