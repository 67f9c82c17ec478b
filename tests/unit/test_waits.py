"""The bounds of a call's waits on media events (controller.core.waits): pure computations."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import pytest

from controller.config import PROJECT_ROOT
from controller.core import waits


def _wav(path: Path, seconds: float, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))


def test_wav_duration_from_its_header(tmp_path: Path) -> None:
    f = tmp_path / "x.wav"
    _wav(f, 2.5)
    data = f.read_bytes()
    assert waits.wav_seconds(data[:512], len(data)) == pytest.approx(2.5)
    _wav(f, 1.0, rate=16000)
    data = f.read_bytes()
    assert waits.wav_seconds(data[:512], len(data)) == pytest.approx(1.0)


def test_wav_with_an_extra_chunk_and_a_streamed_size() -> None:
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    body = b"LIST" + struct.pack("<I", 3) + b"abc\0"  # odd size: padded
    body += b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", 0xFFFFFFFF)  # unknown size: what the file holds
    header = b"RIFF" + struct.pack("<I", 0) + b"WAVE" + body
    assert waits.wav_seconds(header, len(header) + 8000) == pytest.approx(0.5)


@pytest.mark.parametrize("header", [b"", b"RIFF\0\0\0\0AVI ", b"RIFF\0\0\0\0WAVE",
                                    b"RIFF\0\0\0\0WAVEdata\x10\0\0\0"])  # data before fmt
def test_not_a_readable_wav(header: bytes) -> None:
    assert waits.wav_seconds(header, 1000) is None


def test_raw_formats_from_their_size() -> None:
    assert waits.raw_seconds("gsm", 1650 * 3) == pytest.approx(3.0)
    assert waits.raw_seconds("ulaw", 8000) == pytest.approx(1.0)
    assert waits.raw_seconds("sln16", 32000) == pytest.approx(1.0)
    assert waits.raw_seconds("mp3", 1000) is None


def test_media_seconds_of_local_prompt_files(tmp_path: Path) -> None:
    _wav(tmp_path / "hello.wav", 1.5)
    (tmp_path / "hello.gsm").write_bytes(b"\0" * 1650 * 2)  # Asterisk may pick either
    assert waits.media_seconds(f"sound:{tmp_path}/hello") == pytest.approx(2.0)
    assert waits.media_seconds(f"sound:{tmp_path}/absent") is None  # not on this host
    assert waits.media_seconds(f"sound:{tmp_path}/../x") is None
    assert waits.media_seconds("digits:123") is None
    assert waits.media_seconds("tone:ring") is None


def test_media_seconds_of_the_projects_example_prompt() -> None:
    uri = f"sound:{PROJECT_ROOT / 'prompts' / 'en' / 'goodbye'}"
    assert waits.media_seconds(uri, "en") == pytest.approx(0.885, abs=0.01)


def test_prompt_bound_is_the_known_durations_plus_a_margin() -> None:
    assert waits.prompt_bound([2.0, 1.5]) == pytest.approx(3.5 + waits.PROMPT_MARGIN_S)
    # unknown media (not on this host) get the generous default each
    assert waits.prompt_bound([2.0, None]) == pytest.approx(
        2.0 + waits.UNKNOWN_MEDIA_S + waits.PROMPT_MARGIN_S)
    assert waits.prompt_bound([]) == waits.PROMPT_MARGIN_S


def test_record_bound_is_max_seconds_plus_a_margin() -> None:
    assert waits.record_bound(120) == 120 + waits.RECORD_MARGIN_S
    assert waits.record_bound(-1) == waits.RECORD_MARGIN_S


def test_every_wait_is_bounded_in_total() -> None:
    """Even while ARI says the media still plays, a call waits at most its bound plus the
    re-checks (then it stops the media): the longest prompt wait for one unknown media."""
    worst = waits.prompt_bound([None]) + waits.MAX_RECHECKS * waits.RECHECK_S
    assert worst <= 120
