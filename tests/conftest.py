"""Shared fixtures. Integration fixtures start the real stack (Asterisk, Redis) on test ports."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.core.flows import loader as _loader

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Under pytest-xdist (scripts/test.sh runs 2 workers) each worker gets a test slot of its own:
# CALLCTL_TEST_SLOT + its number (gw0, gw1, ...). A slot is its own Asterisk, Redis, ports
# and run directory (integration/conftest.py, sippctl.py), so the workers' calls never meet.
# Set here, before those modules read it; the processes a test starts inherit it.
if (_worker := os.environ.get("PYTEST_XDIST_WORKER", "")).startswith("gw"):
    os.environ["CALLCTL_TEST_SLOT"] = str(int(os.environ.get("CALLCTL_TEST_SLOT") or 0)
                                          + int(_worker[2:]))


@pytest.fixture(autouse=True)
def _loaded_flows_fit_the_schema(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every flow file a test loads and the loader accepts must be valid against the shipped
    JSON Schema too, in the loader's and an editor's YAML reading (tests/flowschema.py). The
    loader runs unchanged: its result is only checked on the way out."""
    import flowschema

    bad: list[str] = []
    original = _loader._load_texts

    def checked(texts: dict[str, str], problems: list[_loader.Problem]) -> _loader.LoadResult:
        result = original(texts, problems)
        if result.ok:
            for name, text in texts.items():
                if errors := flowschema.schema_errors(text):
                    bad.append(f"{name}: {errors}")
        return result

    monkeypatch.setattr(_loader, "_load_texts", checked)
    yield
    if bad:
        pytest.fail("the loader accepted flows that flows/examples/flow.schema.json rejects:\n"
                    + "\n".join(bad), pytrace=False)
