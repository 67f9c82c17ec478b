"""Cross-reference checks on a flow set, on top of the schema. Pure; all problems in one run.

Errors (block a publish): unknown nodes/users/departments/flows, invalid or reserved ids, a
DID used twice, a flow entry that does not exist, a loop no caller can leave, department
problems (:func:`~controller.core.flows.departments.department_problems`: unknown members,
simultaneous above the cap, ...), mailboxes the runtime cannot record into, more than 9 menu
options, an extension used twice or equal to a DID (:func:`extension_problems`).

Warnings (do not block): unreachable nodes and flows, menus/inputs with no path for a caller
who presses nothing or a wrong key (the call is hung up), an input POST with no ``error``
branch, prompts found neither in ``prompts_dir`` nor in Asterisk's sounds, languages without
a prompts directory, and :func:`department_warnings` / :func:`duplicate_endpoints`.

Here: the framework (problems at ``file:line:col``, hints), the directory's checks and those
across nodes (references, reachability, loops). A node type's own checks are in its module
(``lint``, ``lint_refs``), called through the :class:`~controller.core.nodes.base.Checker`
this linter implements.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from controller.core.flows.departments import (
    department_mailbox,
    department_problems,
    department_warnings,
)
from controller.core.flows.directory import (
    duplicate_endpoints,
    extension_problems,
    user_problems,
)
from controller.core.flows.graph import Key, sccs, short_cycle
from controller.core.flows.problems import (
    MISSING,
    Location,
    Problem,
    Severity,
    format_path,
    parse_path,
)
from controller.core.flows.schema import Flow, FlowSet, line_failover
from controller.core.flows.sourcemap import SourceMap
from controller.core.nodes.base import FAILOVER, NodeBase
from controller.core.patterns import ID_RE, MAILBOX_RE
from controller.core.prompts import prompt_exists, prompts_root, valid_prompt_name

__all__ = ["lint"]

HINT_COMPARISONS = 100_000
"""Names compared for 'did you mean' hints in one run (about half a second); once spent, the
other unknown names get no hint (thousands of typos in a big flow would take minutes)."""
_UNSET: Any = object()


def lint(
    fs: FlowSet,
    source: SourceMap | None = None,
    *,
    broken: frozenset[tuple[str, ...]] = frozenset(),
    salvaged: dict[tuple[str, str], Any] | None = None,
) -> list[Problem]:
    """Every problem of ``fs``. ``broken`` names entries that failed schema validation
    (``("users", id)``, ``("flows", id, "nodes", id)``, ...): references to them are not
    reported again, and flows with broken nodes skip the graph checks. ``salvaged`` holds
    broken nodes re-validated without their bad fields, ``(flow, node) -> node``: their
    remaining references are still checked, so one run reports every error."""
    linter = _Linter(fs, source, broken)
    linter.run()
    for (fid, nid), node in (salvaged or {}).items():
        linter.check_refs(fid, nid, node)
    return linter.problems


class _Linter:
    def __init__(
        self, fs: FlowSet, source: SourceMap | None, broken: frozenset[tuple[str, ...]]
    ) -> None:
        self.fs = fs
        self.source = source
        self.broken = broken
        self.problems: list[Problem] = []
        self.users = set(fs.users) | {b[1] for b in broken if b[0] == "users" and len(b) == 2}
        self.departments = set(fs.departments) | {
            b[1] for b in broken if b[0] == "departments" and len(b) == 2
        }
        self.flow_ids = set(fs.flows) | {b[1] for b in broken if b[0] == "flows"}
        self.broken_nodes: dict[str, set[str]] = {}
        for b in broken:
            if b[0] == "flows" and len(b) == 4:
                self.broken_nodes.setdefault(b[1], set()).add(b[3])
        self._seen_prompts: set[str] = set()
        self._nodes: dict[str, set[str]] = {}  # nodes_of, once per flow (big flows)
        self._hints = 0

    # ----------------------------------------------------------------------------- helpers

    def add(
        self,
        loc: Sequence[str | int],
        message: str,
        value: Any = _UNSET,
        *,
        severity: Severity = "error",
    ) -> None:
        if self.source is not None:
            where = self.source.locate(loc)
        else:
            where = Location("<flowset>", 1, 1, format_path(loc), MISSING)
        self.problems.append(Problem(
            where.file, where.line, where.col, where.path,
            where.value if value is _UNSET else value, message, severity,
        ))

    def warn(self, loc: Sequence[str | int], message: str, value: Any = _UNSET) -> None:
        self.add(loc, message, value, severity="warning")

    def nodes_of(self, fid: str) -> set[str]:
        if fid not in self._nodes:
            flow = self.fs.flows.get(fid)
            self._nodes[fid] = ((set(flow.nodes) if flow else set())
                                | self.broken_nodes.get(fid, set()))
        return self._nodes[fid]

    def hint(self, name: str, known: Iterable[str]) -> str:
        """`` (did you mean 'x'?)`` while HINT_COMPARISONS lasts (difflib is slow)."""
        known = known if isinstance(known, Collection) else list(known)
        self._hints += len(known)
        if self._hints > HINT_COMPARISONS or len(name) > 64:
            return ""
        close = difflib.get_close_matches(name, sorted(known), n=1)
        return f" (did you mean {close[0]!r}?)" if close else ""

    # ----------------------------------------------------------------------------- checks

    def run(self) -> None:
        self.check_settings()
        self.check_users()
        self.check_departments()
        self.check_dids()
        for fid, flow in self.fs.flows.items():
            self.check_flow(fid, flow)
        self.check_graph()

    def check_settings(self) -> None:
        root = prompts_root(self.fs.settings)
        if not root.is_dir():
            self.warn(("settings", "prompts_dir"), f"prompts directory {str(root)!r} does not "
                      "exist: prompts play Asterisk's stock sounds only",
                      self.fs.settings.prompts_dir)

    def check_users(self) -> None:
        for uid, user in self.fs.users.items():
            for path, msg in user_problems(user, self.fs.users):
                self.add(("users", uid, *parse_path(path)), msg)
        for path, msg in duplicate_endpoints(self.fs.users.values()):
            self.warn(("users", *parse_path(path)), msg)
        dids = [d for flow in self.fs.flows.values() for d in flow.dids]
        for path, msg in extension_problems(self.fs.users.values(), dids):
            self.add(("users", *parse_path(path)), msg)

    def check_departments(self) -> None:
        settings = self.fs.settings
        for did, dept in self.fs.departments.items():
            for path, msg in department_problems(dept, self.fs.users, settings):
                self.add(("departments", did, *parse_path(path)), msg)
            for path, msg in department_warnings(dept, self.fs.users):
                self.warn(("departments", did, *parse_path(path)), msg)
            if (dept.failover is None or dept.failover.voicemail) and department_mailbox(
                    dept) == did:
                self.check_recordable(("departments", did, "[key]"), did, "department id",
                                      "set mailbox")
            if dept.failover is not None:
                self.check_failover(("departments", did, "failover"), dept.failover)

    def check_failover(self, loc: tuple[str | int, ...], fo: Any) -> None:
        if fo.greeting is not None:
            self.check_prompt((*loc, "greeting"), fo.greeting)
        elif fo.voicemail:
            self.check_prompt((*loc, "greeting"), "failover-greeting", quiet_value=True)

    def check_recordable(self, loc: tuple[str | int, ...], box: str, what: str,
                         fix: str) -> None:
        """An id a failover records into (the models check the mailboxes people write)."""
        if not MAILBOX_RE.fullmatch(box):
            self.add(loc, f"{what} {box!r} is the mailbox its failover records into, and it "
                     "cannot be one (at most 64 lower-case letters, digits, '_' and '-'): "
                     f"{fix}", box)

    def check_prompt(
        self, loc: tuple[str | int, ...], name: str, *, quiet_value: bool = False
    ) -> None:
        if not valid_prompt_name(name):
            self.add(loc, f"invalid prompt name {name!r}: use lower-case letters, digits, "
                     "'_', '-' and '/', without an extension", name)
            return
        if name in self._seen_prompts:
            return
        self._seen_prompts.add(name)  # checked once (warned once when missing)
        if not prompt_exists(name, self.fs.settings):
            lang = self.fs.settings.language
            self.warn(loc, f"prompt {name!r} not found: no {self.fs.settings.prompts_dir}/"
                      f"{lang}/{name}.wav and no Asterisk sound of that name",
                      name if quiet_value else _UNSET)

    def check_language_dir(self, loc: Sequence[str | int], language: str) -> None:
        if language == self.fs.settings.language:
            return
        if not (prompts_root(self.fs.settings) / language).is_dir():
            self.warn(loc, f"no prompts for language {language!r} "
                      f"({self.fs.settings.prompts_dir}/{language}/): "
                      f"{self.fs.settings.language!r} prompts will play", language)

    def check_dids(self) -> None:
        owner: dict[str, tuple[str, int]] = {}
        for fid, flow in self.fs.flows.items():
            for i, did in enumerate(flow.dids):
                key = did.lstrip("+")
                if key in owner:
                    ofid, oi = owner[key]
                    where = ""
                    if self.source is not None:
                        loc = self.source.locate(("flows", ofid, "dids", oi))
                        where = f" at {loc.file}:{loc.line}:{loc.col}"
                    what = "this flow" if ofid == fid else f"flow {ofid!r}"
                    self.add(("flows", fid, "dids", i),
                             f"DID {did} is also listed by {what}{where}: a DID belongs to "
                             "one flow", did)
                else:
                    owner[key] = (fid, i)

    def check_flow(self, fid: str, flow: Flow) -> None:
        base = ("flows", fid)
        if not ID_RE.fullmatch(fid):
            self.add((*base, "[key]"), f"invalid flow id {fid!r}: use lower-case letters, "
                     "digits, '_' and '-'", fid)
        nodes = self.nodes_of(fid)
        if not nodes:
            self.add((*base, "nodes"), "a flow needs nodes", MISSING)
        elif flow.entry not in nodes:
            self.add((*base, "entry"), f"unknown node {flow.entry!r}"
                     + self.hint(flow.entry, nodes), flow.entry)
        if flow.failover is not None:
            self.check_failover((*base, "failover"), flow.failover)
        if ID_RE.fullmatch(fid) and flow.dids and line_failover(self.fs, flow).mailbox == fid:
            self.check_recordable((*base, "[key]"), fid, "flow id", "set failover.mailbox")
        if flow.language:
            self.check_language_dir((*base, "language"), flow.language)
        for nid, node in flow.nodes.items():
            self.check_node(fid, nid, node)

    def check_node(self, fid: str, nid: str, node: NodeBase) -> None:
        loc = ("flows", fid, "nodes", nid)
        if not ID_RE.fullmatch(nid):
            self.add((*loc, "[key]"), f"invalid node id {nid!r}: use lower-case letters, "
                     "digits, '_' and '-'", nid)
        elif nid == FAILOVER:
            self.add((*loc, "[key]"), "'failover' is reserved (fallback: failover means the "
                     "failover): rename this node", nid)
        self.check_refs(fid, nid, node)
        for path, name in node.prompts():
            self.check_prompt((*loc, *path), name)
        node.lint(self, fid, loc)

    def check_refs(self, fid: str, nid: str, node: NodeBase) -> None:
        """References of one node: target nodes, its department or user."""
        loc = ("flows", fid, "nodes", nid)
        nodes = self.nodes_of(fid)
        for path, target in node.targets():
            if target not in nodes:
                self.add((*loc, *path), f"unknown node {target!r} in flow {fid!r}"
                         + self.hint(target, nodes), target)
        node.lint_refs(self, loc)

    # ----------------------------------------------------------------------------- graph

    def check_graph(self) -> None:
        fs = self.fs
        graph: dict[Key, list[Key]] = {}
        exits: set[Key] = set()
        skip = {fid for fid, flow in fs.flows.items()
                if fid in self.broken_nodes or flow.entry not in flow.nodes}
        for fid, flow in fs.flows.items():
            for nid, node in flow.nodes.items():
                key = (fid, nid)
                graph[key] = node.edges(fid, fs)
                if node.may_exit():
                    exits.add(key)
        # Targets that are unknown or broken: cannot be analysed, assume they may leave.
        for targets in list(graph.values()):
            for t in targets:
                if t not in graph:
                    exits.add(t)

        # Reachability from every flow's entry (a goto may enter a flow elsewhere).
        reached: set[Key] = set()
        entered: set[str] = set()
        todo = [(fid, flow.entry) for fid, flow in fs.flows.items()]
        while todo:
            k = todo.pop()
            if k in reached or k not in graph:
                continue
            reached.add(k)
            for t in graph[k]:
                if t[0] != k[0]:
                    entered.add(t[0])
                todo.append(t)
        for fid, flow in fs.flows.items():
            if fid in skip:
                continue
            if not flow.dids and fid not in entered:
                self.warn(("flows", fid, "[key]"), "no DIDs and no goto leads to this flow",
                          fid)
            for nid in flow.nodes:
                if (fid, nid) not in reached:
                    self.warn(("flows", fid, "nodes", nid, "[key]"),
                              f"unreachable: nothing leads to {nid!r} from the entry "
                              f"{flow.entry!r}", nid)

        # Loops: nodes from which no exit can be reached, grouped in cycles.
        reverse: dict[Key, list[Key]] = {}
        for k, targets in graph.items():
            for t in targets:
                reverse.setdefault(t, []).append(k)
        can_exit: set[Key] = set()
        todo = list(exits)
        while todo:
            k = todo.pop()
            if k in can_exit:
                continue
            can_exit.add(k)
            todo.extend(reverse.get(k, ()))
        stuck = {k: [t for t in graph[k] if t not in can_exit] for k in graph
                 if k not in can_exit and k[0] not in skip}
        order = {k: i for i, k in enumerate(graph)}
        for scc in sccs(stuck):
            if len(scc) == 1 and scc[0] not in stuck.get(scc[0], ()):
                continue
            scc.sort(key=order.__getitem__)
            cycle = short_cycle(scc[0], set(scc), stuck)
            cross = len({k[0] for k in cycle}) > 1
            shown = " -> ".join(f"{f}.{n}" if cross else n for f, n in cycle)
            first = scc[0]
            self.add(("flows", first[0], "nodes", first[1], "[key]"),
                     "loop with no way out to a person, voicemail or hangup: " + shown,
                     first[1])
