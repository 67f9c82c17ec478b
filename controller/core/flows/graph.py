"""Graph algorithms of the flow linter's loop check (:mod:`controller.core.flows.lint`). Pure.

Nodes are ``(flow id, node id)`` keys; a graph maps each to the keys it leads to.
"""

from __future__ import annotations

__all__ = ["Key", "sccs", "short_cycle"]

Key = tuple[str, str]
"""(flow id, node id)"""


def sccs(graph: dict[Key, list[Key]]) -> list[list[Key]]:
    """Strongly connected components (iterative Tarjan)."""
    index: dict[Key, int] = {}
    low: dict[Key, int] = {}
    on_stack: set[Key] = set()
    stack: list[Key] = []
    out: list[list[Key]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work: list[tuple[Key, int]] = [(start, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            succ = [w for w in graph.get(v, ()) if w in graph]
            if i < len(succ):
                work.append((v, i + 1))
                w = succ[i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                comp: list[Key] = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return out


def short_cycle(start: Key, members: set[Key], graph: dict[Key, list[Key]]) -> list[Key]:
    """A path start -> ... -> start inside ``members`` (breadth first, so a short one)."""
    prev: dict[Key, Key] = {}
    queue = [start]
    while queue:
        k = queue.pop(0)
        for t in graph.get(k, ()):
            if t not in members:
                continue
            if t == start:
                path = [k]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                return [*reversed(path), start]
            if t not in prev:
                prev[t] = k
                queue.append(t)
    return [start, start]
