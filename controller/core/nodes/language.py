"""``language`` node: the caller picks a language by key; later prompts use it.

Same key handling as the menu (:func:`controller.core.nodes.menu.collect_choice`). On a valid key
``ctx.language`` is set, so every prompt resolved after it (menus, messages, voicemail
greetings, failover greetings) plays from ``prompts/<language>/`` when the file exists there.
"""

from __future__ import annotations

from controller.core.flows.schema import LanguageNode
from controller.core.model import CallContext, Continue, NodeGen
from controller.core.nodes.menu import collect_choice

__all__ = ["run"]


def run(node: LanguageNode, ctx: CallContext) -> NodeGen:
    key = yield from collect_choice(node, ctx, node.valid_keys())
    choice = node.options.get(key)
    if choice is not None:
        ctx.language = choice.language
        ctx.log("language", node=node.id, language=choice.language)
    return Continue(key)
