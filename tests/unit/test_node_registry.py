"""A node type is one module of controller/core/nodes and one line in its registry.

Each registered module holds the node's model (``MODEL``), its handler (``run``) and its editor
schema text (``SCHEMA``); its lint checks are methods of the model. The flow schema's union,
the engine's handlers, the loader's "use one of ..." message and the editor schema all come
from the registry, so nothing else needs to name a node type.
"""

from __future__ import annotations

import json
from pathlib import Path

from controller.core import nodes
from controller.core.flows.editor_schema import DEFINITIONS
from controller.core.flows.loader import load_text
from controller.core.flows.schema import NODE_ADAPTER
from controller.core.nodes.base import NodeBase

HELPERS = {"__init__", "base", "ringing", "internal"}
"""Modules of the package that are not node types (the registry, the base, what the
department and extension nodes share, the registered phones' calls)."""


def test_every_node_module_is_registered_once() -> None:
    files = {p.stem for p in Path(nodes.__file__).parent.glob("*.py")} - HELPERS
    registered = [m.__name__.rpartition(".")[2] for m in nodes.NODE_MODULES]
    assert sorted(registered) == sorted(files)
    assert len(set(registered)) == len(registered)


def test_a_node_module_holds_its_model_run_and_schema() -> None:
    for module in nodes.NODE_MODULES:
        model = module.MODEL
        node_type = model.model_fields["type"].default
        assert issubclass(model, NodeBase), module.__name__
        assert nodes.NODE_TYPES[node_type] is model
        assert nodes.HANDLERS[node_type] is module.run
        assert model.__name__ in module.SCHEMA, module.__name__
        assert DEFINITIONS[model.__name__] is module.SCHEMA[model.__name__]


def test_the_union_and_the_messages_follow_the_registry() -> None:
    for node_type, model in nodes.NODE_TYPES.items():
        assert NODE_ADAPTER.json_schema()["discriminator"]["mapping"][node_type].endswith(
            f"/{model.__name__}")
    flows = {"flows": {"main": {"entry": "a", "nodes": {"a": {"type": "nope"}}}}}
    res = load_text(json.dumps(flows))  # JSON is YAML (a text constant would join the corpus
    # test_flow_schema checks against the schema, as if "unknown node" were a cross-reference)
    assert [p.message for p in res.errors] == [
        f"unknown node type 'nope': use one of {', '.join(nodes.NODE_TYPES)}"]
