"""Bounds for a call's waits on Asterisk events (pure: stdlib only, no event loop).

A call that plays a prompt or records a message waits for ``PlaybackFinished`` /
``RecordingFinished``. Such an event can be lost (a websocket cut at the wrong moment, our
Stasis app taken over by another connection): the wait then gets a bound. At the bound the
call asks ARI (``GET /playbacks/{id}``, ``GET /recordings/live/{name}``): gone -> it goes on
as if the event had come; still going -> it waits :data:`RECHECK_S` more, at most
:data:`MAX_RECHECKS` times, then stops the media and goes on.

A prompt's bound is the media's duration, read from the files when they are on this host (a
``sound:/abs/path`` prompt of ``prompts_dir``, or an Asterisk stock sound in
:data:`controller.core.prompts.STOCK_SOUNDS_DIR`), plus :data:`PROMPT_MARGIN_S`; media whose
duration cannot be read (no such file here: the controller runs on another host than
Asterisk; ``digits:``...) count :data:`UNKNOWN_MEDIA_S` each. A recording's bound is its
``max_seconds`` plus :data:`RECORD_MARGIN_S` (Asterisk itself ends it at ``max_seconds``).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable
from pathlib import Path

from controller.core.patterns import LANGUAGE_RE
from controller.core.prompts import AUDIO_EXTENSIONS, STOCK_SOUNDS_DIR

__all__ = [
    "MAX_RECHECKS",
    "PROMPT_MARGIN_S",
    "RECHECK_S",
    "RECORD_MARGIN_S",
    "UNKNOWN_MEDIA_S",
    "media_seconds",
    "prompt_bound",
    "raw_seconds",
    "record_bound",
    "wav_seconds",
]

PROMPT_MARGIN_S = 3.0
"""Over the media's duration: answer, media set-up, a loaded Asterisk."""
UNKNOWN_MEDIA_S = 30.0
"""Per media item whose duration is unknown here (stock sounds are a few seconds)."""
RECORD_MARGIN_S = 5.0
"""Over a recording's ``max_seconds``: the beep and the file being closed."""
RECHECK_S = 10.0
"""ARI says the media is still going at the bound: wait this much more, then ask again."""
MAX_RECHECKS = 6
"""...at most this many times (a minute): then the call stops the media and goes on."""
CACHE_TTL = 30.0

RAW_BYTES_PER_S = {"ulaw": 8000, "alaw": 8000, "sln": 16000, "sln16": 32000,
                   "g722": 8000, "g729": 1000, "gsm": 1650}
"""Headerless formats Asterisk plays: bytes per second of audio (gsm: 33-byte 20 ms
frames; sln16: 16 kHz signed linear; g722: 64 kbit/s; g729: 8 kbit/s)."""

_cache: dict[str, tuple[float, float | None]] = {}


def wav_seconds(header: bytes, file_size: int) -> float | None:
    """Duration of a RIFF/WAVE file from its first bytes (the ``fmt `` and ``data`` chunk
    headers, within ``header``); None if it is not a readable wav."""
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
        return None
    pos, byte_rate = 12, 0
    while pos + 8 <= len(header):
        cid, size = header[pos:pos + 4], struct.unpack_from("<I", header, pos + 4)[0]
        body = pos + 8
        if cid == b"fmt " and body + 12 <= len(header):
            byte_rate = struct.unpack_from("<I", header, body + 8)[0]
        elif cid == b"data":
            if byte_rate <= 0:
                return None
            # a streamed wav may leave the size 0 / 0xFFFFFFFF: take what the file holds
            data = size if 0 < size <= file_size - body else file_size - body
            return max(data, 0) / byte_rate
        pos = body + size + (size & 1)
    return None


def raw_seconds(ext: str, file_size: int) -> float | None:
    """Duration of a headerless audio file from its size; None for an unknown format."""
    rate = RAW_BYTES_PER_S.get(ext.lower())
    return file_size / rate if rate else None


def _file_seconds(stem: Path) -> float | None:
    """The longest duration among ``stem.<ext>`` files (Asterisk picks one of them); None if
    none is readable."""
    if not stem.name:
        return None
    best: float | None = None
    candidates = [stem.with_name(f"{stem.name}.{ext}") for ext in sorted(AUDIO_EXTENSIONS)]
    for p in candidates:
        try:
            size = p.stat().st_size
            if p.suffix.lower() == ".wav":
                with p.open("rb") as f:
                    secs = wav_seconds(f.read(512), size)
            else:
                secs = raw_seconds(p.suffix[1:], size)
        except OSError:
            continue
        if secs is not None and (best is None or secs > best):
            best = secs
    return best


def _stems(uri: str, language: str | None) -> list[Path]:
    """Where the files of a ``sound:`` media URI would be on this host."""
    if not uri.startswith("sound:"):
        return []
    name = uri[len("sound:"):]
    if not name or ".." in name.split("/"):
        return []
    if name.startswith("/"):
        return [Path(name)]
    langs = [lang for lang in (language, "en") if lang and LANGUAGE_RE.fullmatch(lang)]
    return [STOCK_SOUNDS_DIR / lang / name for lang in dict.fromkeys(langs)] + \
        [STOCK_SOUNDS_DIR / name]


def media_seconds(uri: str, language: str | None = None) -> float | None:
    """How long Asterisk takes to play ``uri``, from the files on this host; None: unknown.
    Cached for :data:`CACHE_TTL` seconds (a stat and a 512-byte read otherwise)."""
    key = f"{language or ''}|{uri}"
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and now - hit[0] < CACHE_TTL:
        return hit[1]
    secs: float | None = None
    for stem in _stems(uri, language):
        secs = _file_seconds(stem)
        if secs is not None:
            break
    if len(_cache) > 4096:
        _cache.clear()
    _cache[key] = (now, secs)
    return secs


def prompt_bound(durations: Iterable[float | None]) -> float:
    """How long to wait for a prompt's ``PlaybackFinished`` before asking ARI: the media's
    known durations (``UNKNOWN_MEDIA_S`` each for the unknown ones) plus the margin."""
    return sum(UNKNOWN_MEDIA_S if d is None else max(d, 0.0) for d in durations) + \
        PROMPT_MARGIN_S


def record_bound(max_seconds: float) -> float:
    """How long to wait for a recording's end before asking ARI."""
    return max(max_seconds, 0.0) + RECORD_MARGIN_S
