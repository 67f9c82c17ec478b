"""The docs stay honest: the README's Environment tables list every variable the code reads
(and nothing else), and links between README.md and docs/*.md land on existing headings.

The names come from the source itself (the controller, its scripts, Docker and Asterisk
files, the test and benchmark harness), not from a list kept by hand: a new ``CALLCTL_*``
read anywhere fails this test until the README documents it. Names built in f-strings
(``f"CALLCTL_ARI_USER_{key}"``) must be covered by a documented pattern
(``CALLCTL_ARI_USER_<NODE>``) or by their expansions below.
"""

from __future__ import annotations

import re
from pathlib import Path

from controller.config import SECRET_KEYS

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("controller", "scripts", "docker", "dialplan", "asterisk-conf", "kamailio", "bench",
           "tests/integration", "tests/sippctl.py", "tests/conftest.py", "tests/redisproc.py",
           "Makefile", "docker-compose.yml", "callctl.env.example")
"""Where variables are read. Not tests/unit: unit tests set variables the code reads (or
made-up channel variables), they read none of their own."""

NAME = re.compile(r"CALLCTL_[A-Z0-9_]*[A-Z0-9](?![A-Za-z0-9_{<])")
"""A complete name: not the fixed start of an f-string (``CALLCTL_WEBHOOK_{key}_URLS``) or of
a documented pattern (``CALLCTL_AMI_PORT_<NODE>``)."""
TEMPLATE = re.compile(r"(CALLCTL_[A-Z0-9_]*)\{")
PATTERN = re.compile(r"(CALLCTL_[A-Z0-9_]*)<[A-Z]+>")

NOT_ENV = {
    "CALLCTL_TARGET": "a channel variable on each ringing leg (controller/shell/legs.py)",
    "CALLCTL_ORIGIN": "a channel variable of the dialplan ([from-agents])",
    "CALLCTL_SPAWN_LOG": "set by controller/tools/stack/procs.py for the daemons' shell",
    "CALLCTL_TEST_QUERY": "an Asterisk global variable test_foundation.py sets and reads",
}
EXPANSIONS = {
    # config.ensure_secrets / load_settings: f"CALLCTL_{k}" for the generated secrets
    "CALLCTL_": {f"CALLCTL_{k}" for k in SECRET_KEYS},
    # config._ops_settings: f"CALLCTL_WEBHOOK_{key}_URLS" for key in (AFTER_CALL, IN_CALL)
    "CALLCTL_WEBHOOK_": {"CALLCTL_WEBHOOK_AFTER_CALL_URLS", "CALLCTL_WEBHOOK_IN_CALL_URLS"},
}


def _files() -> list[Path]:
    out: list[Path] = []
    for rel in SCANNED:
        p = ROOT / rel
        out += sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    return [f for f in out if "__pycache__" not in f.parts and f.suffix not in (".wav", ".pyc")]


def _read() -> tuple[set[str], set[str]]:
    """(complete names, f-string prefixes) in the scanned files."""
    names: set[str] = set()
    templates: set[str] = set()
    for f in _files():
        text = f.read_text(errors="replace")
        names.update(NAME.findall(text))
        templates.update(TEMPLATE.findall(text))
    return names - set(NOT_ENV), templates


def _documented() -> tuple[set[str], set[str]]:
    """(names, pattern prefixes) in the first column of the README's Environment tables."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Environment\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    patterns: set[str] = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first = line.split("|")[1]
        names.update(re.findall(r"`((?:CALLCTL_[A-Z0-9_]*[A-Z0-9])|REDIS_URL)`", first))
        patterns.update(PATTERN.findall(first))
    return names, patterns


def _covered(name: str, documented: set[str], patterns: set[str]) -> bool:
    return name in documented or any(
        name.startswith(p) and len(name) > len(p) and p != "CALLCTL_" for p in patterns)


def test_the_scan_finds_the_variables() -> None:
    names, templates = _read()
    assert {"CALLCTL_ARI_URL", "CALLCTL_AGENT_PORT_BASE", "CALLCTL_RTP_START",
            "CALLCTL_HTTP_BIND", "CALLCTL_DISPATCHER_PING", "CALLCTL_TEST_SLOT",
            "CALLCTL_INSTALL_PROJECT"} <= names
    assert {"CALLCTL_", "CALLCTL_ARI_PASSWORD_", "CALLCTL_WEBHOOK_"} <= templates
    documented, patterns = _documented()
    assert len(documented) >= 60 and "CALLCTL_ARI_PASSWORD_" in patterns


def test_every_variable_the_code_reads_is_in_the_environment_table() -> None:
    names, _ = _read()
    documented, patterns = _documented()
    missing = sorted(n for n in names if not _covered(n, documented, patterns))
    assert missing == [], f"README, Environment: no row for {missing}"
    # REDIS_URL is not a CALLCTL_ name, and the controller reads it
    assert "REDIS_URL" in (ROOT / "controller" / "config.py").read_text()
    assert "REDIS_URL" in documented


def test_every_name_built_in_an_f_string_is_documented() -> None:
    _, templates = _read()
    documented, patterns = _documented()
    unexplained = sorted(t for t in templates if t not in patterns and t not in EXPANSIONS)
    assert unexplained == [], f"document a pattern (CALLCTL_X_<NODE>) for {unexplained}"
    for prefix, expanded in EXPANSIONS.items():
        assert prefix in templates, f"{prefix}{{...}} is not in the code any more"
        left = sorted(expanded - documented)
        assert left == [], f"README, Environment: no row for {left}"


def test_the_table_lists_only_variables_something_reads() -> None:
    names, templates = _read()
    documented, patterns = _documented()
    expanded = set().union(*EXPANSIONS.values())
    stale = sorted(n for n in documented - names - expanded - {"REDIS_URL"})
    assert stale == [], f"README, Environment: nothing reads {stale}"
    assert sorted(patterns - templates) == []


# ---------------------------------------------------------------------------------------------
# Links between the docs land on a heading that exists.

DOCS = ("README.md", "docs/flows.md", "docs/testing.md")
LINK = re.compile(r"\]\(([^)\s]*\.md)?(?:#([^)\s]+))?\)")


def _anchors(path: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces as '-', '-1' on repeats."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    in_code = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not re.match(r"#{1,6} ", line):
            continue
        slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_links_between_the_docs_land_on_headings() -> None:
    broken, checked = [], 0
    for rel in DOCS:
        src = ROOT / rel
        for m in LINK.finditer(src.read_text()):
            target, anchor = m.group(1), m.group(2)
            if target is None and anchor is None:
                continue
            checked += 1
            dest = (src.parent / target).resolve() if target else src
            if not dest.is_file():
                broken.append(f"{rel}: {m.group(0)} (no such file)")
            elif anchor and anchor not in _anchors(dest):
                broken.append(f"{rel}: {m.group(0)} (no such heading)")
    assert checked >= 25  # the scan finds the links (31 when written)
    assert broken == []
