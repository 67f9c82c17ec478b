#!/usr/bin/env bash
# The product: install what is missing, start Asterisk + Redis, publish the flows (default:
# flows/examples) if nothing is published yet (`scripts/run.sh --publish DIR` replaces the live
# version; a restart keeps it), run the controller in the foreground. Ctrl-C stops the controller;
# `.venv/bin/callctl stack down` stops Asterisk and Redis.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install.sh
if [ "${CALLCTL_ASTERISK:-}" = 22 ]; then bash scripts/install-ast22.sh; fi
exec .venv/bin/callctl up "$@"
