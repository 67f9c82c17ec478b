"""Prompt names -> Asterisk media URIs.

A prompt is a *name* such as ``welcome`` or ``sales/intro``. It resolves, for the call's
language, to the first of:

1. ``<prompts_dir>/<ctx.language>/<name>.<ext>``  -> ``sound:<absolute path without extension>``
2. ``<prompts_dir>/<settings.language>/<name>.<ext>`` (the default language)
3. Asterisk's stock sound ``sound:<name>`` (``beep``, ``vm-intro``, ...), which Asterisk looks
   up in its own sounds directory for the channel's language.

``prompts_dir`` (``settings.prompts_dir``) is relative to the project root unless absolute.
Directory listings are cached per process for :data:`CACHE_TTL` seconds, so resolving a prompt
costs a dict lookup; :func:`clear_cache` drops the cache (new prompt files otherwise show up
within ``CACHE_TTL``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from controller.config import PROJECT_ROOT
from controller.core.patterns import LANGUAGE_RE, MAX_PROMPT_NAME, PROMPT_NAME_RE

__all__ = [
    "AUDIO_EXTENSIONS",
    "CACHE_TTL",
    "STOCK_SOUNDS_DIR",
    "check_prompt_name",
    "clear_cache",
    "media",
    "media_files",
    "prompt_exists",
    "prompt_file",
    "prompts_root",
    "resolve_prompt",
    "valid_prompt_name",
]

AUDIO_EXTENSIONS = frozenset({"wav", "gsm", "ulaw", "alaw", "sln", "sln16", "g722", "g729"})
"""File formats Asterisk plays from ``sound:`` URIs (it picks the best one present)."""
STOCK_SOUNDS_DIR = Path("/usr/share/asterisk/sounds")
CACHE_TTL = 30.0

_lock = threading.Lock()
_listings: dict[Path, tuple[float, dict[str, tuple[str, ...]]]] = {}


def valid_prompt_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and len(name) <= MAX_PROMPT_NAME
        and PROMPT_NAME_RE.fullmatch(name) is not None
    )


def check_prompt_name(name: str) -> str:
    """Pydantic-style validator: return ``name`` or raise ValueError."""
    if not valid_prompt_name(name):
        raise ValueError(
            f"invalid prompt name {name!r}: use lower-case letters, digits, '_', '-' and '/' "
            "(e.g. 'welcome' or 'sales/intro'), without a file extension"
        )
    return name


def prompts_root(settings: Any) -> Path:
    """The prompts directory of ``settings`` (None: ``<project>/prompts``), absolute."""
    raw = getattr(settings, "prompts_dir", None) or "prompts"
    path = Path(raw)
    return path if path.is_absolute() else PROJECT_ROOT / path


def clear_cache() -> None:
    with _lock:
        _listings.clear()


def _stems(directory: Path) -> dict[str, tuple[str, ...]]:
    """The playable files in ``directory``: name without extension -> its file names;
    cached."""
    now = time.monotonic()
    with _lock:
        hit = _listings.get(directory)
    if hit is not None and now - hit[0] < CACHE_TTL:
        return hit[1]
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        names = []
    stems: dict[str, tuple[str, ...]] = {}
    for n in names:
        stem, _, ext = n.rpartition(".")
        if stem and ext.lower() in AUDIO_EXTENSIONS:
            stems[stem] = (*stems.get(stem, ()), n)
    with _lock:
        _listings[directory] = (now, stems)
    return stems


def _find(directory: Path, name: str) -> Path | None:
    target = directory / name
    return target if target.name in _stems(target.parent) else None


def _languages(language: str | None, settings: Any) -> list[str]:
    out: list[str] = []
    for lang in (language, getattr(settings, "language", None) or "en"):
        if lang and LANGUAGE_RE.fullmatch(lang) and lang not in out:
            out.append(lang)
    return out


def prompt_file(name: str, settings: Any, language: str | None = None) -> Path | None:
    """The prompt's file in ``prompts_dir`` (without extension) for ``language`` or the
    default language, or None."""
    check_prompt_name(name)
    root = prompts_root(settings)
    for lang in _languages(language, settings):
        found = _find(root / lang, name)
        if found is not None:
            return found
    return None


def resolve_prompt(name: str, ctx: Any) -> str:
    """The media URI that plays prompt ``name`` in the call's language.

    Raises ValueError for an invalid name (a published flow never contains one: the schema and
    lint reject them)."""
    settings = getattr(getattr(ctx, "flowset", None), "settings", None)
    language = getattr(ctx, "language", None)
    found = prompt_file(name, settings, language)
    if found is not None:
        return f"sound:{found}"
    if not prompt_exists(name, settings, language):
        # Lint warned at publish; on the call it is not a silent gap either (Asterisk only
        # logs "Playback failed" and goes on with the next media).
        log = getattr(ctx, "log", None)
        if callable(log):
            log("prompt_missing", prompt=name, language=language)
    return f"sound:{name}"


def media(names: Iterable[str], ctx: Any) -> tuple[str, ...]:
    """Resolve several prompt names, in order."""
    return tuple(resolve_prompt(n, ctx) for n in names)


def _asterisk_languages(language: str | None) -> list[str | None]:
    """The languages Asterisk tries for a sound, in order (main/file.c ``fileexists_core``):
    the channel's, without its ``_`` suffixes one by one, none, then ``en``."""
    out: list[str | None] = []
    lang = language or ""
    while lang and LANGUAGE_RE.fullmatch(lang.split("_")[0]):
        out.append(lang)
        if "_" not in lang:
            break
        lang = lang.rsplit("_", 1)[0]
    return [*out, None] + ([] if "en" in out else ["en"])


def media_files(media: Iterable[str], language: str | None = None) -> list[str]:
    """The files on this host that Asterisk plays for ``media`` (resolved URIs) on a channel
    in ``language``, looked up the way it does: a ``sound:/abs/dir/name`` in
    ``/abs/dir/<lang>/`` then ``/abs/dir/``, a stock ``sound:name`` in
    :data:`STOCK_SOUNDS_DIR` (``<lang>/``, the root, ``en/``); the first place that has the
    sound gives its files (each format present: Asterisk picks the one that suits the
    channel). Nothing for ``digits:``/``tone:`` media, nor for sounds this host does not have
    (Asterisk on another host, a missing prompt)."""
    out: list[str] = []
    for uri in media:
        if not uri.startswith("sound:"):
            continue
        name = uri[len("sound:"):]
        if not name or ".." in name.split("/"):
            continue
        base = Path(name) if name.startswith("/") else STOCK_SOUNDS_DIR / name
        for lang in _asterisk_languages(language):
            where = base.parent / lang if lang else base.parent
            files = _stems(where).get(base.name)
            if files:
                out.extend(str(where / f) for f in files)
                break
    return out


def prompt_exists(name: str, settings: Any, language: str | None = None) -> bool:
    """Is there something to play for ``name``: a file in ``prompts_dir`` (``language`` or the
    default language) or an Asterisk stock sound (any format)? Used by lint."""
    if not valid_prompt_name(name):
        return False
    if prompt_file(name, settings, language) is not None:
        return True
    langs = [*_languages(language, settings), "en"]
    stock_dirs = [STOCK_SOUNDS_DIR / lang for lang in dict.fromkeys(langs)] + [STOCK_SOUNDS_DIR]
    return any(_find(d, name) is not None for d in stock_dirs)
