#!/usr/bin/env bash
# Generate the example prompts (text-to-speech) into prompts/<language>/<name>.wav:
# 8 kHz, mono, 16-bit PCM WAV, the format Asterisk plays without transcoding for slin.
#
#   scripts/make_prompts.sh            # create missing files
#   scripts/make_prompts.sh --force    # regenerate all
#   PROMPTS_DIR=/tmp/p scripts/make_prompts.sh
#
# Needs espeak-ng and sox; installs them with apt-get when missing and run as root.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT="${PROMPTS_DIR:-prompts}"
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

if ! command -v espeak-ng >/dev/null || ! command -v sox >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            espeak-ng sox >/dev/null
    else
        echo "make_prompts: install espeak-ng and sox first (apt-get install espeak-ng sox)" >&2
        exit 1
    fi
fi

tmp="$(mktemp --suffix=.wav)"
trap 'rm -f "$tmp"' EXIT

# say LANG_DIR VOICE NAME TEXT
say() {
    local dir="$OUT/$1" voice="$2" name="$3" text="$4"
    local file="$dir/$name.wav"
    if [ -f "$file" ] && [ "$FORCE" = 0 ]; then
        return
    fi
    mkdir -p "$dir"
    espeak-ng -v "$voice" -s 155 -w "$tmp" "$text"
    # resample, trim leading/trailing silence, keep a short tail
    sox -q "$tmp" -r 8000 -c 1 -b 16 -e signed-integer "$file" \
        silence 1 0.05 0.5% reverse silence 1 0.05 0.5% reverse pad 0 0.3
    echo "$file"
}

say en en-us welcome "Thank you for calling Example Company."
say en en-us main-menu "For sales, press 1. For support, press 2. Para español, oprima 9."
say en en-us support-menu "For technical support, press 1. For billing, press 2."
say en en-us choose-language "For English, press 1. Para español, oprima 2."
say en en-us closed "Our office is closed right now."
say en en-us vm-greeting "Please leave your name, number and a short message after the tone."
say en en-us failover-greeting \
    "No one is available to take your call. Please leave a message after the tone."
say en en-us invalid "Sorry, that is not a valid choice."
say en en-us thanks "Thank you. We will call you back soon."
say en en-us goodbye "Goodbye."

say es es welcome "Gracias por llamar a Example Company."
say es es main-menu "Para ventas, oprima 1. Para soporte, oprima 2."
say es es support-menu "Para soporte técnico, oprima 1. Para facturación, oprima 2."
say es es closed "Nuestra oficina está cerrada en este momento."
say es es vm-greeting "Por favor, deje su nombre, número y un breve mensaje después del tono."
say es es failover-greeting \
    "No hay nadie disponible para atender su llamada. Deje un mensaje después del tono."
say es es invalid "Lo sentimos, esa opción no es válida."
say es es thanks "Gracias. Le devolveremos la llamada pronto."
say es es goodbye "Adiós."
