"""CLI conventions (issue 14 item 6): --version, bare `callctl`, "did you mean", --json on
validate, `stack secrets`, the `asterisk` wrapper's argument checks, the calls table and the
`stack up` progress. `main(argv)` in-process; nothing here needs Asterisk or Redis."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from controller.config import SECRET_KEYS, load_settings
from controller.tools import stack
from controller.tools.cli import calls, main
from controller.tools.cli import stack as stack_cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "flows" / "examples"


@pytest.fixture(autouse=True)
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings on a throw-away run dir; no CALLCTL_ secret from the environment."""
    for key in SECRET_KEYS:
        monkeypatch.delenv(f"CALLCTL_{key}", raising=False)
    monkeypatch.setenv("CALLCTL_RUN_DIR", str(tmp_path / "run"))
    return tmp_path / "run"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        rc = main.main(argv)
    except SystemExit as e:  # argparse: --version, --help, usage errors
        rc = int(e.code or 0)
    out = capsys.readouterr()
    return rc, out.out, out.err


# ---------------------------------------------------------------------------- conventions


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from controller import version

    rc, out, _ = run(["--version"], capsys)
    assert rc == 0 and out.strip() == f"callctl {version()}"
    assert version() != "unknown"  # installed (editable) by scripts/install.sh


def test_bare_callctl_prints_the_help_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run([], capsys)
    assert rc == 0 and err == ""
    assert out.startswith("usage: callctl") and "validate" in out and "asterisk" in out


def test_given_a_mistyped_command_then_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(["stauts"], capsys)
    assert rc == 2 and out == ""
    assert "unknown command 'stauts' (did you mean 'status'?)" in err
    assert "`callctl --help` lists the commands" in err
    rc, _, err = run(["stack", "stauts"], capsys)
    assert rc == 2 and "invalid choice: 'stauts' (did you mean 'status'?)" in err
    rc, _, err = run(["failover", "tset", "start", "x"], capsys)
    assert rc == 2 and "(did you mean 'test'?)" in err
    rc, _, err = run(["zzzz"], capsys)
    assert rc == 2 and "unknown command 'zzzz';" in err and "did you mean" not in err


def test_up_refuses_flows_given_both_ways(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(["up", "a", "--publish", "b"], capsys)
    assert rc == 2 and "not both" in err


# ---------------------------------------------------------------------------- --json


def test_validate_json_ok(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(["validate", str(EXAMPLES), "--json"], capsys)
    doc = json.loads(out)  # one document, nothing else on stdout
    assert rc == 0 and doc["ok"] is True and doc["errors"] == []
    assert doc["summary"] == {"flows": 2, "dids": 3, "users": doc["summary"]["users"],
                              "departments": doc["summary"]["departments"]}


def test_validate_json_errors_name_file_line_col_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("flows:\n  x:\n    dids: ['+15550100']\n    entry: m\n    nodes:\n"
                   "      m: {type: manu, prompt: beep}\n      h:\n        type: hangup\n"
                   "        cuase: 16\n")
    rc, out, _ = run(["validate", str(bad), "--json"], capsys)
    doc = json.loads(out)
    assert rc == 1 and doc["ok"] is False and doc["summary"] is None
    by_field = {e["field"]: e for e in doc["errors"]}
    t = by_field["flows.x.nodes.m.type"]
    assert (t["file"], t["line"], t["col"], t["value"], t["severity"]) == (
        str(bad), 6, 17, "manu", "error")
    assert t["message"].startswith("unknown node type 'manu' (did you mean 'menu'?)")
    f = next(e for e in doc["errors"] if e["message"].startswith("unknown field 'cuase'"))
    assert (f["line"], f["col"]) == (9, 9) and "did you mean 'cause'" in f["message"]
    assert set(t) == {"file", "line", "col", "field", "message", "value", "severity",
                      "code"}


# ---------------------------------------------------------------------------- stack secrets


def test_stack_secrets_names_without_values(
        run_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(["stack", "secrets"], capsys)
    assert rc == 3 and "does not exist yet (`callctl stack up` generates it)" in out
    from controller.config import ensure_secrets

    sec = ensure_secrets(run_dir / "secrets.env", env={})
    monkeypatch.setenv("CALLCTL_ADMIN_TOKEN", "from-the-env")
    rc, out, _ = run(["stack", "secrets"], capsys)
    assert rc == 0
    assert out.splitlines()[0] == f"secrets: {run_dir / 'secrets.env'} (mode 0600)"
    for name, value in sec.items():
        assert name in out and value not in out
    assert "from-the-env" not in out
    assert "env CALLCTL_ADMIN_TOKEN" in out and "values hidden" in out
    rc, out, _ = run(["stack", "secrets", "--show", "--json"], capsys)
    doc = json.loads(out)
    values = {r["name"]: r["value"] for r in doc["secrets"]}
    assert values["ADMIN_TOKEN"] == "from-the-env"
    assert values["ARI_PASSWORD"] == sec["ARI_PASSWORD"]
    rc, _, err = run(["stack", "status", "--show"], capsys)
    assert rc == 2 and "--show goes with `secrets` only" in err


def test_the_rendered_pjsip_conf_points_to_commands_that_exist(
        run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import re

    stack.render(load_settings())
    text = (run_dir / "etc" / "pjsip.conf").read_text()
    named = re.findall(r"`callctl ([a-z-]+(?: [a-z-]+)?)`", text)
    assert "stack secrets" in named
    for cmd in named:
        rc, out, _ = run([*cmd.split(), "--help"], capsys)
        assert rc == 0 and out.startswith("usage: callctl"), cmd
    rc, out, _ = run(["stack", "secrets"], capsys)
    assert rc == 0 and "PHONE1_PASSWORD" in out


# ---------------------------------------------------------------------------- asterisk


def test_asterisk_flags_read_like_getopt() -> None:
    assert stack_cli.asterisk_flags(["-rx", "core show version"]) == {"r", "x"}
    assert stack_cli.asterisk_flags(["-x", "-C", "-r"]) == {"x", "r"}  # "-C" is -x's command
    assert stack_cli.asterisk_flags(["-rvvv"]) == {"r", "v"}
    assert stack_cli.asterisk_flags(["-C/etc/x.conf", "-c"]) == {"C", "c"}
    assert stack_cli.asterisk_flags(["-r", "--", "-C"]) == {"r"}


def test_asterisk_refuses_its_own_config_and_starting_asterisk(
        capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(["asterisk", "-C", "/tmp/x.conf", "-rx", "core show version"], capsys)
    assert rc == 2 and "-C is set by callctl" in err
    for args in (["-c"], ["-f", "-n"], ["-g"]):
        rc, _, err = run(["asterisk", *args], capsys)
        assert rc == 2 and "only a remote console" in err, args
    rc, out, _ = run(["asterisk", "--help"], capsys)
    assert rc == 0 and "callctl asterisk -rx 'core show channels'" in out


# ---------------------------------------------------------------------------- calls table


def test_calls_table_has_a_header_dates_and_ages() -> None:
    import os

    tz = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        t0 = 1796565787.0  # 2026-12-06 14:03:07 UTC
        rows: list[dict[str, Any]] = [
            {"call_id": "node1-1796565787.12", "did": "+15550100", "caller": "+15551230001",
             "result": "completed", "answered_by": "alice", "started": t0, "duration": 31.25},
            {"call_id": "node1-x", "did": "+15550101", "caller": "", "result": "blocked",
             "started": t0 - 7200, "duration": 0.0},
            {"call_id": "node1-live", "did": "+15550100", "caller": "+1555",
             "started": str(t0 + 50)},  # a live call: no result yet, started as a string
        ]
        lines = calls.format_calls(rows, now=t0 + 65).splitlines()
    finally:
        if tz is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = tz
        time.tzset()
    assert lines[0].split() == ["STARTED", "AGE", "CALL", "DID", "CALLER", "RESULT",
                                "ANSWERED", "BY", "DURATION"]
    assert lines[1].split() == ["2026-12-06", "14:03:07", "1m", "node1-1796565787.12",
                                "+15550100", "+15551230001", "completed", "alice", "31.2s"]
    assert lines[2].split()[:3] == ["2026-12-06", "12:03:07", "2h"]
    assert lines[2].split()[-4:] == ["-", "blocked", "-", "0.0s"]
    assert lines[3].split()[-3:] == ["live", "-", "15s+"]
    # aligned: every column starts where its header does
    col = lines[0].index("RESULT")
    assert all(line[col:].split()[0] in ("RESULT", "completed", "blocked", "live")
               for line in lines)
    assert calls.format_calls([]) == "no calls"


# ---------------------------------------------------------------------------- stack up progress


def test_stack_wait_says_what_it_waits_for_and_how_long(tmp_path: Path) -> None:
    seen: list[tuple[str, float, bool]] = []
    answers = iter([False] * 12 + [True])
    stack._wait(lambda: next(answers), 5, "Asterisk ARI at http://x", tmp_path / "log",
                lambda *a: seen.append(a), interval=0.1)
    assert seen[0] == ("Asterisk ARI at http://x", seen[0][1], False) and seen[0][1] < 1
    assert [s[2] for s in seen] == [False] * (len(seen) - 1) + [True]
    assert seen[-1][1] >= 1.2 and len(seen) >= 3  # 0 s, 1 s (and more if slow), answered
    waits = [int(s[1]) for s in seen[:-1]]
    assert waits == sorted(set(waits))  # about once a second, not every poll
    with pytest.raises(stack.StackError, match="Redis did not answer within 0 s; see"):
        stack._wait(lambda: False, 0.2, "Redis", tmp_path / "log", None, interval=0.05)


def test_stack_progress_lines_off_a_terminal() -> None:
    out = io.StringIO()
    p = stack_cli.StackProgress(out)
    for elapsed in (0.0, 1.0, 2.0, 5.0, 6.0):
        p("Asterisk ARI at http://127.0.0.1:8088", elapsed, False)
    p("Asterisk ARI at http://127.0.0.1:8088", 6.4, True)
    assert out.getvalue().splitlines() == [
        "waiting for Asterisk ARI at http://127.0.0.1:8088 ...",
        "waiting for Asterisk ARI at http://127.0.0.1:8088 ... 5 s",
        "Asterisk ARI at http://127.0.0.1:8088: answered after 6.4 s"]
