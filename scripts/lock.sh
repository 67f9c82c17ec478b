#!/usr/bin/env bash
# Regenerate requirements.lock: the runtime and test dependencies of pyproject.toml and the
# setuptools the editable install builds with (scripts/build-requirements.in), every one pinned
# with its hashes, for CPython 3.11 on Linux (Debian 12's python3, the CI machine's and the
# Docker image's). scripts/install.sh installs exactly that with pip --require-hashes.
#
#   scripts/lock.sh             after changing dependencies in pyproject.toml: keeps every pin
#                               it can and resolves only what changed (also `make lock`)
#   scripts/lock.sh --upgrade   move everything to the newest versions allowed
#   scripts/lock.sh --upgrade-package aiohttp    just one
#
# The resolver (uv, from the package registry) lives in its own venv, .venv-lock/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=${CALLCTL_LOCK_VENV:-$ROOT/.venv-lock}
UV_VERSION=0.13.9

if [ "$("$TOOLS/bin/uv" --version 2>/dev/null | awk '{print $2}')" != "$UV_VERSION" ]; then
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install -q --disable-pip-version-check "uv==$UV_VERSION"
fi
cd "$ROOT"
"$TOOLS/bin/uv" pip compile --quiet \
    pyproject.toml scripts/build-requirements.in --extra test \
    --generate-hashes --python-version 3.11 --python-platform linux \
    --custom-compile-command "scripts/lock.sh" \
    --output-file requirements.lock "$@"
echo "lock: requirements.lock: $(grep -c '^[a-zA-Z]' requirements.lock) packages" >&2
