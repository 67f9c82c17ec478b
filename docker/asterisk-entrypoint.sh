#!/bin/sh
# The asterisk container's command. Renders asterisk-conf/ and dialplan/ into the run directory
# (the same files CI runs, with this container's CALLCTL_* settings and the shared generated
# secrets), then replaces this shell with Asterisk in the foreground (-f): Asterisk is the
# container's main process, receives `docker stop`'s SIGTERM itself, and the container stops
# when Asterisk does (restart: unless-stopped brings it back). Extra arguments go to Asterisk.
set -eu
cd "$(dirname "$0")/.."
conf=$(.venv/bin/python -c '
from controller.config import load_settings
from controller.tools.stack import render
print(render(load_settings(generate=True)).asterisk_conf)')
exec asterisk -C "$conf" -f -n "$@"
