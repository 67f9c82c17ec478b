#!/usr/bin/env bash
# The test suite against the real stack: install what is missing, lint, then pytest (the
# integration fixtures start Asterisk and Redis on test ports and stop them at the end).
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/unit -x`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CALLCTL_TEST_DEPS=1 bash scripts/install.sh  # + chromium for the diagram page test
.venv/bin/ruff check controller tests bench
exec .venv/bin/pytest -q -p no:cacheprovider "$@"
