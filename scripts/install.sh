#!/usr/bin/env bash
# callctl install: idempotent, for a fresh Debian 12 (bookworm) machine as root.
#   - Asterisk 16.28 from Debian's bullseye + bullseye-security suites, pinned low so that
#     only what bookworm lacks comes from there;
#   - redis-server and SIPp (sip-tester) from bookworm;
#   - a venv at .venv with exactly the versions in requirements.lock (runtime + test extras,
#     pip --require-hashes; regenerate with scripts/lock.sh), then the project itself editable
#     (--no-deps). CALLCTL_INSTALL_PROJECT=0 stops before the project (the Docker image's
#     dependency layer, built before the source is copied in).
# The archive addresses are read from this machine's own apt sources: none is written here.
# A second run does no network work unless something is missing, and takes seconds.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${CALLCTL_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}
APT_LIST=/etc/apt/sources.list.d/callctl-bullseye.sources
APT_PIN=/etc/apt/preferences.d/callctl-bullseye.pref
log() { printf 'install: %s\n' "$*" >&2; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs Debian packages)"

# --- apt sources: derive the archive addresses from the machine's own configuration --------------
archive_uri() {
    # $1 = "main" (the suite bookworm lives in) or "security" (bookworm-security).
    local want=$1 uri=""
    local files=(/etc/apt/sources.list.d/*.sources)
    if [ -e "${files[0]}" ]; then
        # deb822: a stanza's URIs line paired with its Suites line.
        uri=$(awk -v want="$want" '
            BEGIN { RS=""; FS="\n" }
            {
                u=""; s="";
                for (i=1; i<=NF; i++) {
                    if ($i ~ /^URIs:/)   { sub(/^URIs:[ \t]*/, "", $i); split($i, a, /[ \t]+/); u=a[1] }
                    if ($i ~ /^Suites:/) { s=$i }
                }
                if (u == "") next;
                if (want == "security" && s ~ /-security/) { print u; exit }
                if (want == "main" && s ~ /[ \t]bookworm([ \t]|$)/) { print u; exit }
            }' "${files[@]}" 2>/dev/null || true)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        if [ "$want" = security ]; then
            uri=$(awk '$1=="deb" && $3 ~ /-security/ {print $2; exit}' /etc/apt/sources.list)
        else
            uri=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list)
        fi
    fi
    printf '%s' "$uri"
}

need_pkgs=()
command -v asterisk >/dev/null 2>&1 || need_pkgs+=(asterisk)
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
command -v sipp >/dev/null 2>&1 || need_pkgs+=(sip-tester)
# Kamailio: the SIP dispatcher in front of several Asterisk nodes (`callctl dispatcher up`;
# ~3 s to install, a 9 MB package, 27 MB on disk). We run it with kamailio/kamailio.cfg.
command -v kamailio >/dev/null 2>&1 || need_pkgs+=(kamailio)
"$PY" -c 'import venv, ensurepip' >/dev/null 2>&1 || need_pkgs+=(python3-venv)
# Test-only (scripts/test.sh sets CALLCTL_TEST_DEPS=1): headless Chromium from bookworm for the
# flow diagram page's screenshot test (~10 s to install; that test is skipped without it), and
# docker-compose (Compose v1 from bookworm) whose `config` checks docker-compose.yml (no Docker
# engine is needed for that; that test is skipped without it).
if [ "${CALLCTL_TEST_DEPS:-0}" = 1 ]; then
    command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
    command -v docker-compose >/dev/null 2>&1 || need_pkgs+=(docker-compose)
fi

if [ ${#need_pkgs[@]} -gt 0 ]; then
    if [ ! -f "$APT_LIST" ]; then
        main_uri=$(archive_uri main)
        sec_uri=$(archive_uri security)
        [ -n "$main_uri" ] || die "cannot find the Debian archive address in /etc/apt/sources.list(.d); add bookworm's sources first"
        [ -n "$sec_uri" ] || sec_uri="${main_uri%/debian}/debian-security"
        log "adding bullseye + bullseye-security (from this machine's archive addresses), pinned low"
        cat >"$APT_LIST" <<SRC
# Added by callctl scripts/install.sh: Asterisk 16 is in bullseye, not bookworm.
Types: deb
URIs: $main_uri
Suites: bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $sec_uri
Suites: bullseye-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
        cat >"$APT_PIN" <<PIN
# Added by callctl scripts/install.sh: prefer bookworm; take from bullseye only what bookworm lacks.
Package: *
Pin: release n=bullseye
Pin-Priority: 100

Package: *
Pin: release n=bullseye-security
Pin-Priority: 100
PIN
    fi
    log "apt-get install ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The package's own service must not start: we run Asterisk with our own asterisk.conf.
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
    # The packages' own services (stock configs) must not run beside ours on a machine that
    # runs systemd: Kamailio's and Asterisk's would take the SIP port (5060), Debian's Redis
    # port 6379 with no password (`callctl stack up` then refuses it: ours has one).
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        for svc in asterisk kamailio redis-server; do
            if [[ " ${need_pkgs[*]} " == *" $svc "* ]]; then
                systemctl disable --now "$svc" >/dev/null 2>&1 || true
            fi
        done
    fi
fi

# --- Python venv --------------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv at $VENV"
    "$PY" -m venv "$VENV"
fi
# The locked dependencies, again only when requirements.lock changed (its hash is the stamp).
lock="$ROOT/requirements.lock"
lock_stamp="$VENV/.callctl-lock"
[ -f "$lock" ] || die "no $lock (scripts/lock.sh makes it)"
lock_sum=$(sha256sum "$lock" | awk '{print $1}')
if [ "$(cat "$lock_stamp" 2>/dev/null)" != "$lock_sum" ]; then
    log "pip install --require-hashes -r requirements.lock"
    "$VENV/bin/pip" install -q --disable-pip-version-check --require-hashes -r "$lock"
    printf '%s\n' "$lock_sum" >"$lock_stamp"
fi
# The project itself: no dependencies (all locked above), built with the locked setuptools.
stamp="$VENV/.callctl-installed"
if [ "${CALLCTL_INSTALL_PROJECT:-1}" = 1 ] && { [ ! -f "$stamp" ] \
        || [ "$ROOT/pyproject.toml" -nt "$stamp" ] || [ "$lock_stamp" -nt "$stamp" ]; }; then
    log "pip install --no-deps -e ."
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation \
        -e "$ROOT"
    touch "$stamp"
fi
# Test-only: promtool (checks deploy/prometheus/alerts.yml) from Debian's `prometheus` package:
# only its one static binary is extracted into the venv (installing the package would also
# install and start a Prometheus server); a 19 MB download, a few seconds. Tests skip without.
if [ "${CALLCTL_TEST_DEPS:-0}" = 1 ] && [ ! -x "$VENV/bin/promtool" ] \
        && ! command -v promtool >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    if (cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1) \
            && dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb \
               | tar -x -C "$tmp" ./usr/bin/promtool 2>/dev/null; then
        install -m 0755 "$tmp/usr/bin/promtool" "$VENV/bin/promtool"
        log "promtool: $("$VENV/bin/promtool" --version 2>&1 | head -1)"
    else
        log "promtool not available: the alert rules check is skipped"
    fi
    rm -rf "$tmp"
fi
log "ready: $(asterisk -V 2>/dev/null || echo 'asterisk ?'), $(redis-server --version | awk '{print $3}'), $(sipp -v 2>/dev/null | grep -o 'v[0-9.]*' | head -1 || true), $(kamailio -v 2>/dev/null | head -1 | awk '{print $2, $3}' || true)"
