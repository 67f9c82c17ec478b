"""Benchmarks (not tests): ``python -m bench`` and the soak, ``python -m bench.soak``."""
