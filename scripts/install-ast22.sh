#!/usr/bin/env bash
# Asterisk 22 as a second test target: a Debian sid (minbase) root made with debootstrap in
# the git-ignored run/ directory, with Debian's `asterisk` package (22.x) installed inside it.
# Sid's Asterisk needs a newer libc than bookworm, so it is never installed on the host itself.
# `callctl stack up` runs it from that root when CALLCTL_ASTERISK=22 (see controller/tools/stack/procs.py).
#
# Idempotent: a second run only checks that the root answers `asterisk -V` (about a second).
# The archive address is read from this machine's own apt sources: none is written here.
# CALLCTL_AST22_ROOT overrides where the root lives (default: <project>/run/ast22-root).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CALLCTL_AST22_ROOT:-$ROOT/run/ast22-root}
STAMP=$TARGET/.callctl-ast22-ready
log() { printf 'install-ast22: %s\n' "$*" >&2; }
die() { printf 'install-ast22: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap and chroot need it)"

ready() { [ -f "$STAMP" ] && chroot "$TARGET" /usr/sbin/asterisk -V >/dev/null 2>&1; }
if ready; then
    log "ready: $(chroot "$TARGET" /usr/sbin/asterisk -V) in $TARGET"
    exit 0
fi

# --- the machine's own Debian archive address (the one its bookworm suite comes from) ---------
archive_uri() {
    local uri="" files=(/etc/apt/sources.list.d/*.sources)
    if [ -e "${files[0]}" ]; then
        uri=$(awk '
            BEGIN { RS=""; FS="\n" }
            {
                u=""; s="";
                for (i=1; i<=NF; i++) {
                    if ($i ~ /^URIs:/)   { sub(/^URIs:[ \t]*/, "", $i); split($i, a, /[ \t]+/); u=a[1] }
                    if ($i ~ /^Suites:/) { s=$i }
                }
                if (u != "" && s ~ /[ \t]bookworm([ \t]|$)/) { print u; exit }
            }' "${files[@]}" 2>/dev/null || true)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list)
    fi
    printf '%s' "$uri"
}

export DEBIAN_FRONTEND=noninteractive
if ! command -v debootstrap >/dev/null 2>&1; then
    log "apt-get install debootstrap (host)"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

t0=$(date +%s)
if [ ! -x "$TARGET/usr/bin/apt-get" ] || [ ! -f "$TARGET/etc/debian_version" ]; then
    uri=$(archive_uri)
    [ -n "$uri" ] || die "cannot find the Debian archive address in /etc/apt/sources.list(.d)"
    # A half-made root from an interrupted run: start over (never while anything is mounted in it).
    if [ -d "$TARGET" ]; then
        if awk -v t="$TARGET/" 'index($2"/", t) == 1 { found=1 } END { exit !found }' /proc/mounts
        then
            die "something is mounted under $TARGET; stop the stack first"
        fi
        log "removing incomplete $TARGET"
        rm -rf --one-file-system "$TARGET"
    fi
    mkdir -p "$TARGET"
    log "debootstrap --variant=minbase sid $TARGET (this machine's archive)"
    debootstrap --variant=minbase sid "$TARGET" "$uri" >"$TARGET.debootstrap.log" 2>&1 \
        || die "debootstrap failed; see $TARGET.debootstrap.log"
    log "debootstrap done in $(( $(date +%s) - t0 )) s"
fi

# Inside the root: no service may start from a package's maintainer script.
printf '#!/bin/sh\nexit 101\n' >"$TARGET/usr/sbin/policy-rc.d"
chmod 0755 "$TARGET/usr/sbin/policy-rc.d"
[ -s "$TARGET/etc/resolv.conf" ] || cp /etc/resolv.conf "$TARGET/etc/resolv.conf"

t1=$(date +%s)
log "apt-get install asterisk (inside the sid root)"
# The archive's sid Release file can be past its Valid-Until date (a dated snapshot).
chroot "$TARGET" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
    /bin/sh -c 'apt-get -qq -o Acquire::Check-Valid-Until=false update &&
                apt-get install -y -qq --no-install-recommends asterisk >/dev/null &&
                apt-get clean' \
    || die "apt-get install asterisk failed inside $TARGET"
log "asterisk installed in $(( $(date +%s) - t1 )) s"
chroot "$TARGET" /usr/sbin/asterisk -V >/dev/null || die "asterisk -V fails inside $TARGET"
touch "$STAMP"
log "ready: $(chroot "$TARGET" /usr/sbin/asterisk -V) in $TARGET ($(du -sh --one-file-system "$TARGET" | cut -f1))"
