"""Issue 13 item 11: hostile flow files never crash the loader.

The real example flows are mutated (control characters, unbalanced brackets, deep nesting,
huge scalars, anchors/aliases and alias bombs, tabs, invalid UTF-8 bytes, BOMs, odd tags,
duplicated and dropped lines...) and loaded the way ``callctl validate`` reads a file (bytes
-> :func:`loader.decode` -> the loader). Every input either loads, or is refused with the
loader's own error type (:class:`loader.FlowInputError`, from ``decode``) or with problems,
each with a position inside the document: never another exception.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.flows import loader
from controller.core.flows.yamlsafe import MAX_FILE_BYTES

EXAMPLES = Path(__file__).resolve().parents[2] / "flows" / "examples"
SOURCES = [p.read_bytes() for p in sorted(EXAMPLES.glob("*.yaml"))]
SOURCES.append(b"\n".join(SOURCES))  # all three as one document

CONTROL = [bytes([c]) for c in (*range(0, 9), 11, 12, *range(14, 32), 127)]
SNIPPETS = [
    b"\t", b"\t\t- x\n", b"[", b"]", b"{", b"}", b"[[[[", b"}}}}", b"{a: [", b"'", b'"',
    b"&a ", b"*a", b"*undefined", b"<<: *a\n", b"&x [*x, *x, *x]", b"? [a, b]\n: c\n",
    b"---\n", b"...\n", b"%YAML 1.1\n", b"!!python/object:os.system ", b"!!binary zz ",
    b"!!set {a, b}", b"!!timestamp 2001-99-99 ", b"!custom x", b"9" * 5000,
    b"1e99999", b"0x", b"0o9", b"2025-13-45", b": ", b"- ", b"#", b"|\n", b">-\n",
    b"\xef\xbb\xbf", b"\xff", b"\xfe", b"\xc3", b"\xc3\x28", b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80", b"\xe2\x80\xa8", b"\xc2\x85", b"\\u0000", b"\r", b"\r\n",
]


def bomb(levels: int, fan: int) -> bytes:
    lines = [b"a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels + 1):
        refs = b", ".join([f"*a{i - 1}".encode()] * fan)
        lines.append(f"a{i}: &a{i} [".encode() + refs + b"]")
    return b"\njunk:\n  " + b"\n  ".join(lines) + b"\n"


@st.composite
def mutation(draw: st.DrawFn, size: int) -> tuple[str, int, bytes]:
    kind = draw(st.sampled_from([
        "control", "snippet", "snippet", "nesting", "huge_scalar", "bomb", "delete",
        "duplicate", "byte", "text", "bom", "indent"]))
    at = draw(st.integers(0, size))
    if kind == "control":
        return "insert", at, draw(st.sampled_from(CONTROL))
    if kind == "snippet":
        return "insert", at, draw(st.sampled_from(SNIPPETS))
    if kind == "nesting":
        depth = draw(st.sampled_from([63, 64, 65, 100, 999, 1001, 50_000]))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b"{a: ", b"}"), (b"- ", b"")]))
        closed = draw(st.booleans())
        return "insert", at, opener * depth + b"x" + (closer * depth if closed else b"")
    if kind == "huge_scalar":
        n = draw(st.sampled_from([10_000, 100_000, 1_100_000]))
        return "insert", at, draw(st.sampled_from([b"x", b"9", b"\xc3\xa9"])) * n
    if kind == "bomb":
        return "insert", at, bomb(draw(st.integers(1, 8)), draw(st.integers(1, 9)))
    if kind == "delete":
        return "delete", at, b"x" * draw(st.integers(1, 200))
    if kind == "duplicate":
        return "duplicate", at, b"x" * draw(st.integers(1, 400))
    if kind == "byte":
        return "insert", at, bytes([draw(st.integers(0, 255))])
    if kind == "bom":
        return "insert", draw(st.sampled_from([0, at])), b"\xef\xbb\xbf"
    if kind == "indent":
        return "insert", at, b"\n" + b" " * draw(st.integers(0, 12))
    text = draw(st.text(min_size=1, max_size=40))
    return "insert", at, text.encode("utf-8", "surrogatepass")


def apply(data: bytes, op: str, at: int, chunk: bytes) -> bytes:
    at = min(at, len(data))
    if op == "delete":
        return data[:at] + data[at + len(chunk):]
    if op == "duplicate":
        return data[:at] + data[at:at + len(chunk)] + data[at:]
    return data[:at] + chunk + data[at:]


@st.composite
def hostile(draw: st.DrawFn) -> bytes:
    data = draw(st.sampled_from(SOURCES))
    for _ in range(draw(st.integers(1, 4))):
        data = apply(data, *draw(mutation(len(data))))
    return data


def load_bytes(data: bytes, name: str = "fuzz.yaml") -> loader.LoadResult | None:
    """As ``callctl validate`` reads a file: None when ``decode`` refuses the bytes."""
    try:
        text = loader.decode(data, name)
    except loader.FlowInputError as e:
        check_location(e.problem(), data.decode("utf-8", "replace"), name)
        assert e.code in loader.INPUT_CODES
        return None
    res = loader.load_text(text, name)
    for p in res.problems:
        check_location(p, text, name)
    if res.refused:
        assert len(res.errors) == 1, res.errors  # one clear message, nothing else
    return res


def check_location(p: loader.Problem, text: str, name: str) -> None:
    assert p.file == name, p
    assert p.message and "Traceback" not in p.message, p
    lines = text.count("\n") + text.count("\r") + 2  # libyaml counts \r as a line break
    assert 1 <= p.line <= lines, (p, lines)
    assert 1 <= p.col <= len(text) + 1, p
    assert len(str(p)) < 1000, str(p)[:200]  # a huge key or scalar is cut in the message


@settings(max_examples=600, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(hostile())
def test_mutated_example_flows_load_or_are_refused_with_a_location(data: bytes) -> None:
    load_bytes(data)


def test_the_unmutated_examples_load_and_each_family_is_refused_where_it_is() -> None:
    for src in SOURCES[:-1]:
        res = load_bytes(src)
        assert res is not None and not res.refused
    main = SOURCES[0] if b"flows:" in SOURCES[0] else SOURCES[-1]
    cases = {
        b"\x00": "control_character", b"\x1b": "control_character",
        b"\xff": "not_utf8", b"[" * 50_000: "too_deep",
        bomb(8, 9): "alias_expansion", b"x" * (MAX_FILE_BYTES + 1): "too_big",
    }
    for chunk, code in cases.items():
        at = main.index(b"\n", len(main) // 2) + 1
        data = main[:at] + chunk + main[at:]
        line = main[:at].count(b"\n") + 1
        res = load_bytes(data)
        if res is None:
            assert code in ("not_utf8", "too_big")
            continue
        (err,) = res.errors
        assert err.code == code, (code, err)
        if code not in ("too_big", "alias_expansion"):
            assert err.line == line, (code, err)
