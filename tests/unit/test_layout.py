"""The package layout holds: layers import downwards only, no import circles, a pure core,
small modules.

The layers, lowest first (README "Layout", issue 15):
``config, logs`` < ``core`` < ``adapters`` < ``cluster`` < ``shell`` < ``ops`` < ``admin`` <
``tools``. Every import counts - module level, under ``TYPE_CHECKING`` and inside functions -
because a circle that only closes inside a function is still a circle for whoever reads the
code (and fails the day someone hoists the import). A lower layer that needs something of a
higher one defines a Protocol or takes a factory/callback instead.

The modules are read with :mod:`ast`, never imported: nothing here runs controller code.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "controller"

LAYERS = ("base", "core", "adapters", "cluster", "shell", "ops", "admin", "tools")
"""Lowest first. ``base``: ``controller`` itself, ``config``, ``logs``, ``urls`` (cross-cutting)."""
BASE = {"controller", "controller.config", "controller.jsonx", "controller.logs",
        "controller.urls"}
TOP = {"controller.__main__": "tools"}
"""``python -m controller`` is the command line's entry point."""

IMPURE = ("asyncio", "aiohttp", "redis", "panoramisk", "socket", "subprocess", "threading")
"""What the pure core never imports (issue 15 B4)."""
IMPURE_ALLOWED = {
    # A process-wide cache of prompt directory listings (read-only filesystem lookups the
    # flow nodes make while they run): the lock guards the cache for the admin flow worker
    # thread, which lints (prompt_exists) while the event loop resolves prompts. No I/O
    # framework, nothing that blocks for long; moving it out would make core/nodes import
    # the shell.
    ("controller.core.prompts", "threading"),
}

MAX_LINES = 400
TOO_LONG_FOR_NOW: set[str] = set()  # none left: split a module that grows past the limit

BEING_REMOVED = {
    # Imports other helpers are removing right now (issue 15 part B: admin/server.py and
    # shell/services.py get a composition root; core/flows/* is being split). The lead
    # empties this set when their work lands; a check below fails once an edge is gone.
}


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _owner(name: str) -> str | None:
    """The module of ours that ``name`` (a dotted import target) lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> dict[str, set[str]]:
    """Every import of ``module``: target (dotted, may be a third-party name) -> the lines."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return _imports_in(path.read_text(), str(path.relative_to(ROOT)), package)


def _imports_in(source: str, filename: str, package: str) -> dict[str, set[str]]:
    """Every import statement anywhere in ``source`` (module level, ``if TYPE_CHECKING:``,
    functions, classes): target -> ``file:line``s."""
    tree = ast.parse(source, filename=filename)
    out: dict[str, set[str]] = {}

    def add(target: str, node: ast.stmt) -> None:
        out.setdefault(target, set()).add(f"{filename}:{node.lineno}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                # ``from controller.core import engine`` imports the module engine.
                add(full if full in MODULES else base, node)
    return out


IMPORTS = {m: _imports(m) for m in MODULES}


def _graph() -> dict[str, dict[str, set[str]]]:
    """Our modules -> the modules of ours they import -> where."""
    graph: dict[str, dict[str, set[str]]] = {}
    for module, imports in IMPORTS.items():
        edges: dict[str, set[str]] = {}
        for target, where in imports.items():
            owner = _owner(target) if target.split(".")[0] == "controller" else None
            if owner is not None and owner != module:
                edges.setdefault(owner, set()).update(where)
        graph[module] = edges
    return graph


GRAPH = _graph()
CHECKED = {a: {b: w for b, w in edges.items() if (a, b) not in BEING_REMOVED}
           for a, edges in GRAPH.items()}
"""The graph the rules hold on: GRAPH less the edges in BEING_REMOVED."""


def layer(module: str) -> str:
    if module in TOP:
        return TOP[module]
    if module in BASE:
        return "base"
    return module.split(".")[1]


def _cycles(graph: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer() -> None:
    unknown = sorted(m for m in MODULES if layer(m) not in LAYERS)
    assert not unknown, f"modules outside the layers {LAYERS}: {unknown}"


def test_no_import_circles() -> None:
    problems = []
    for component in _cycles(CHECKED):
        members = set(component)
        edges = [
            f"    {a} -> {b}  ({', '.join(sorted(CHECKED[a][b]))})"
            for a in component for b in sorted(CHECKED[a]) if b in members
        ]
        problems.append(" <-> ".join(component) + "\n" + "\n".join(edges))
    assert not problems, "import circles:\n" + "\n".join(problems)


def test_no_import_from_a_higher_layer() -> None:
    rank = {name: i for i, name in enumerate(LAYERS)}
    problems = [
        f"{a} ({layer(a)}) imports {b} ({layer(b)}) at {', '.join(sorted(where))}"
        for a, edges in sorted(CHECKED.items())
        for b, where in sorted(edges.items())
        if rank[layer(b)] > rank[layer(a)]
    ]
    assert not problems, "imports from a higher layer:\n" + "\n".join(problems)


def test_core_is_pure() -> None:
    problems = [
        f"{module} imports {target} at {', '.join(sorted(where))}"
        for module, imports in sorted(IMPORTS.items())
        if layer(module) == "core"
        for target, where in sorted(imports.items())
        if target.split(".")[0] in IMPURE
        and (module, target.split(".")[0]) not in IMPURE_ALLOWED
    ]
    assert not problems, "the core imports I/O:\n" + "\n".join(problems)


def test_impure_allowances_are_still_needed() -> None:
    stale = [
        (module, name) for module, name in sorted(IMPURE_ALLOWED)
        if not any(t.split(".")[0] == name for t in IMPORTS.get(module, {}))
    ]
    assert not stale, f"IMPURE_ALLOWED lists imports that are gone: {stale}"


def test_modules_are_small() -> None:
    sizes = {m: len(p.read_text().splitlines()) for m, p in MODULES.items()}
    over = sorted(
        (f"{MODULES[m].relative_to(ROOT)}: {n} lines" for m, n in sizes.items()
         if n > MAX_LINES and m not in TOO_LONG_FOR_NOW),
    )
    assert not over, f"modules over {MAX_LINES} lines (split them by role):\n" + "\n".join(over)


def test_the_allow_lists_are_still_needed() -> None:
    """Once a module is split (or an import removed), its entry goes: the lists only shrink."""
    sizes = {m: len(p.read_text().splitlines()) for m, p in MODULES.items()}
    small = sorted(m for m in TOO_LONG_FOR_NOW if sizes.get(m, 0) <= MAX_LINES)
    assert not small, f"TOO_LONG_FOR_NOW lists modules within {MAX_LINES} lines (or gone): {small}"
    gone = sorted(f"{a} -> {b}" for a, b in BEING_REMOVED if b not in GRAPH.get(a, {}))
    assert not gone, f"BEING_REMOVED lists imports that are gone: {gone}"


def test_the_checks_can_fail() -> None:
    """The cycle finder and the layer rank see what they must (a guard against a check that
    silently passes: e.g. an ast walk that misses imports inside functions)."""
    graph = {"a": {"b": {"x"}}, "b": {"c": {"x"}}, "c": {"a": {"x"}}, "d": {"a": {"x"}}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert layer("controller.shell.runtime") == "shell"
    assert layer("controller.config") == "base"
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from controller.shell.call import Call\n"
        "class A:\n"
        "    def f(self):\n"
        "        import controller.ops\n"
        "        from . import store\n"
        "        from ..ari import events\n"
    )
    found = _imports_in(source, "x.py", "controller.adapters.redis")
    assert {
        "controller.shell.call", "controller.ops", "controller.adapters.redis.store",
        "controller.adapters.ari.events",
    } <= found.keys()
