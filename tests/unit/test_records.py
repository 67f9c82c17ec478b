"""Issue 14 item 7: one shape for every call record; the trace names the prompt files played.

Pure: the record builder (controller.core.calllog), how a media URI maps to the files Asterisk
plays (controller.core.prompts, as main/file.c looks them up), and the timeline text of those
trace entries (controller.ops.timeline.describe).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.core import prompts
from controller.core.calllog import RECORD_FIELDS, build_record
from controller.ops.timeline import call_events, describe

T = 1_800_000_000.0

ANSWERED_TRACE = [
    {"at": T, "kind": "flow", "flow": "main"},
    {"at": T + 0.1, "kind": "node", "id": "sales", "type": "department"},
    {"at": T + 0.2, "kind": "failover_test", "line": "sales"},
    {"at": T + 1, "kind": "leg", "user": "alice", "address": "agent1", "role": "primary",
     "outcome": "answered", "cause": None},
    {"at": T + 4, "kind": "answer", "user": "alice", "address": "agent1", "role": "primary"},
]


def completed() -> dict[str, object]:
    return build_record(call_id="n1-1.2", did="+15550100", caller="+15551230001",
                        flow_version=3, started=T, ended=T + 64, result="completed",
                        trace=ANSWERED_TRACE, answered_at=T + 4, answered_by="alice",
                        path=["sales"], node="n1")


def rejected(blocked_by: str | None) -> dict[str, object]:
    trace = [{"at": T, "kind": "blocked", "pattern": blocked_by, "cause": 21}] if blocked_by \
        else [{"at": T, "kind": "no_flow", "did": "+15550199", "cause": 1}]
    return build_record(call_id="n1-1.3", did="+15550199", caller="+19005551234",
                        flow_version=3, started=T, ended=T + 0.01,
                        result="blocked" if blocked_by else "no_flow", trace=trace, node="n1",
                        blocked_by=blocked_by)


def test_a_rejected_record_has_the_same_fields_as_a_completed_one() -> None:
    done, blocked, no_flow = completed(), rejected("+1900*"), rejected(None)
    assert list(done) == list(blocked) == list(no_flow) == list(RECORD_FIELDS)
    assert (done["wait"], done["talk"], done["duration"]) == (4.0, 60.0, 64.0)
    assert done["failover_test"] == "sales" and done["rang"][0]["user"] == "alice"
    for r in (blocked, no_flow):
        assert (r["rang"], r["path"], r["failovers"], r["voicemail"]) == ([], [], [], None)
        assert (r["answered_at"], r["answered_by"], r["wait"], r["talk"]) == (None,) * 4
        assert r["duration"] == 0.01 and r["flow_version"] == 3 and r["node"] == "n1"
        assert r["failover_test"] is None
    assert blocked["blocked_by"] == "+1900*" and no_flow["blocked_by"] is None


def test_a_record_never_shares_the_callers_path_list() -> None:
    path = ["a"]
    rec = build_record(call_id="c", did="d", caller="", flow_version=None, started=T,
                       ended=T, result="hangup", trace=[], path=path)
    path.append("b")
    assert rec["path"] == ["a"]


# ---------------------------------------------------------------- which files a prompt plays

def _wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF")
    return path


@pytest.fixture
def sounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    stock = tmp_path / "stock"
    monkeypatch.setattr(prompts, "STOCK_SOUNDS_DIR", stock)
    prompts.clear_cache()
    yield tmp_path
    prompts.clear_cache()


def test_a_prompt_file_of_prompts_dir_is_named_with_each_format_present(sounds: Path) -> None:
    wav = _wav(sounds / "prompts" / "en" / "welcome.wav")
    gsm = _wav(sounds / "prompts" / "en" / "welcome.gsm")
    uri = f"sound:{sounds / 'prompts' / 'en' / 'welcome'}"
    assert prompts.media_files([uri], "en") == [str(gsm), str(wav)]


def test_a_language_directory_next_to_an_absolute_sound_wins_as_in_asterisk(
        sounds: Path) -> None:
    # main/file.c: for /dir/name Asterisk tries /dir/<lang>/name, then /dir/name
    _wav(sounds / "p" / "hello.wav")
    fr = _wav(sounds / "p" / "fr" / "hello.wav")
    uri = f"sound:{sounds / 'p' / 'hello'}"
    assert prompts.media_files([uri], "fr_CA") == [str(fr)]  # fr_CA, then fr
    assert prompts.media_files([uri], "de") == [str(sounds / "p" / "hello.wav")]


def test_a_stock_sound_is_looked_up_language_none_then_en(sounds: Path) -> None:
    stock = sounds / "stock"
    en = _wav(stock / "en" / "beep.wav")
    assert prompts.media_files(["sound:beep"], "de") == [str(en)]
    root = _wav(stock / "beep.gsm")
    prompts.clear_cache()
    assert prompts.media_files(["sound:beep"], "de") == [str(root)]  # no language before en
    de = _wav(stock / "de" / "beep.gsm")
    prompts.clear_cache()
    assert prompts.media_files(["sound:beep"], "de") == [str(de)]


def test_media_without_a_file_here_name_none(sounds: Path) -> None:
    assert prompts.media_files(["digits:123", "tone:ring", "sound:nothing-here",
                                "sound:../etc/passwd", "sound:"], "en") == []


def test_the_asterisk_language_order() -> None:
    assert prompts._asterisk_languages("fr_CA_x") == ["fr_CA_x", "fr_CA", "fr", None, "en"]
    assert prompts._asterisk_languages("en") == ["en", None]
    assert prompts._asterisk_languages(None) == [None, "en"]


# ---------------------------------------------------------------- the timeline text

def test_the_timeline_shows_the_file_played_else_the_media() -> None:
    entry = {"at": T, "kind": "prompt", "node": "menu",
             "media": ["sound:/p/en/main-menu", "digits:42", "sound:beep"],
             "files": ["/p/en/main-menu.wav"]}
    assert describe(entry) == "play at menu: /p/en/main-menu.wav, digits:42, sound:beep"
    two = {**entry, "media": ["sound:/p/en/x"], "files": ["/p/en/x.gsm", "/p/en/x.wav"]}
    assert describe(two) == "play at menu: /p/en/x.gsm | /p/en/x.wav"
    assert call_events([entry], T)[0]["kind"] == "prompt"


def test_the_timeline_of_a_no_flow_call_says_why() -> None:
    assert describe({"kind": "no_flow", "did": "+15550199", "cause": 1}) == \
        "no published flow for DID +15550199: rejected with cause 1"
    assert describe({"kind": "no_flow", "did": "+1555"}) == "no published flow for DID +1555"
