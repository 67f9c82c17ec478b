#!/usr/bin/env bash
# The test suite against the real stack: install what is missing, lint, type-check (mypy),
# then pytest (the integration fixtures start Asterisk and Redis on test ports and stop them at
# the end).
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/unit -x`.
# CALLCTL_TEST_WORKERS=N (default 2; 1: one process): pytest-xdist workers, one test file at a
# time each, each on its own test slot (its own Asterisk, Redis and ports: tests/conftest.py).
# The integration tests mostly wait on real calls, so two workers halve the wall time.
# CALLCTL_ASTERISK=22: against Debian sid's Asterisk 22 in a debootstrap'd root
# (scripts/install-ast22.sh; also `make test-ast22`) instead of the host's 16.28.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CALLCTL_TEST_DEPS=1 bash scripts/install.sh  # + chromium for the diagram page test
if [ "${CALLCTL_ASTERISK:-}" = 22 ]; then bash scripts/install-ast22.sh; fi
.venv/bin/ruff check controller tests bench
.venv/bin/mypy controller  # [tool.mypy] in pyproject.toml
workers=${CALLCTL_TEST_WORKERS:-2}
xdist=()
if [ "$workers" -gt 1 ]; then xdist=(-n "$workers" --dist loadfile); fi
exec .venv/bin/pytest -q -p no:cacheprovider "${xdist[@]}" "$@"
