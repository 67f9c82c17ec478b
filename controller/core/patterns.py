"""Every pattern that decides whether input is acceptable, in one place. Pure: ``re`` only.

Caller data (caller ID, DTMF, DIDs), flow files, CLI and admin API arguments are checked
against these and nothing else, so two modules cannot disagree: three mailbox rules once
did, and a mailbox the directory accepted made the call fail when it came to record.

Not here on purpose: parsers of a syntax of their own that pick values apart (durations,
``HH:MM``, day ranges: :mod:`controller.core.flows.directory`, ``ops``), the JSON Schema's
spellings of these rules for editors (:mod:`controller.core.flows.editor_schema`), and
``CALLCTL_NODE`` names (:data:`controller.config.NODE_NAME_RE`: config is below core and
imports nothing of it). The dialplan re-checks DIDs, numbers and mailboxes with the same
expressions (``dialplan/callctl-dialplan.conf``; a unit test compares them).
"""

from __future__ import annotations

import re

__all__ = [
    "CALL_ID_RE",
    "DID_RE",
    "DTMF_DIGITS",
    "E164_RE",
    "ENDPOINT_RE",
    "EXTENSION_RE",
    "FIELD_RE",
    "ID_RE",
    "KEYPAD_KEYS",
    "LANGUAGE_RE",
    "MAILBOX_RE",
    "MAX_PROMPT_NAME",
    "MENU_KEYS",
    "NUMBER_PREFIX_RE",
    "PHONE_JUNK",
    "PROMPT_NAME_RE",
    "STATUS_RE",
    "VARIABLE_RE",
]

# ---------------------------------------------------------------------------------------------
# Names and ids.

ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
"""An id in a flow file: users, departments, flows and nodes (the mapping keys)."""
MAILBOX_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
"""A mailbox: a directory of the recording path (``voicemail/<mailbox>/...``) and a field of
the outage path's AstDB value, so lower-case letters, digits, '_' and '-' only, at most 64.
The directory, the flow's voicemail nodes, the live call (``shell/call.py``) and the
dialplan's outage path all check this one rule."""
ENDPOINT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""A PJSIP endpoint name we are willing to put into ``PJSIP/<name>``."""
CALL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
"""A call id (an Asterisk channel id such as ``1700000000.42``) as the CLI and API take it."""
PROMPT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*(?:/[a-z0-9][a-z0-9_-]*)*$")
"""Lower-case segments separated by '/'; no '..', no leading '/', no empty segment."""
MAX_PROMPT_NAME = 128
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(?:[_-][A-Za-z0-9]{2,8})?$")
"""A prompt language: ``en``, ``es``, ``pt_BR`` (a directory under ``prompts_dir``)."""
VARIABLE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
"""An input node's ``variable`` (a key of ``ctx.vars`` and of the JSON it posts)."""
FIELD_RE = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$")
"""A field of an input node's HTTP answer, dots for nesting (``match``)."""
STATUS_RE = re.compile(r"^[1-5](?:[0-9]{2}|xx)$")
"""An HTTP status (``404``) or class (``4xx``) an input node branches on (``on_status``)."""

# ---------------------------------------------------------------------------------------------
# Numbers.

PHONE_JUNK = re.compile(r"[\s().-]")
"""What is stripped from a number as typed or sent: spaces, dots, dashes, parentheses."""
DID_RE = re.compile(r"^\+?[0-9]{2,20}$")
"""A DID, or a caller's number (after :data:`PHONE_JUNK` is stripped): digits with an
optional leading '+', 2 to 20 of them: what the dialplan lets through to the controller."""
NUMBER_PREFIX_RE = re.compile(r"^\+?[0-9]{1,20}$")
"""The number part of a blocklist prefix (``+1900*``)."""
E164_RE = re.compile(r"^\+?[1-9][0-9]{2,14}$")
"""An external (PSTN) number: optional "+", 3 to 15 digits (E.164 maximum), no leading 0."""
EXTENSION_RE = re.compile(r"^[0-9]{2,6}$")
"""A user's extension number: what a registered phone dials to reach them (2 to 6 digits;
anything longer, or starting with '+', is an external number)."""

# ---------------------------------------------------------------------------------------------
# Keys.

DTMF_DIGITS = frozenset("0123456789*#ABCD")
"""Every DTMF digit (RFC 4733 events 0-15): what a live call accepts from ARI and what a
simulated call (``callctl simulate``) may press; anything else is dropped or refused."""
KEYPAD_KEYS = frozenset("0123456789*#")
"""The keys of a phone keypad, the subset of :data:`DTMF_DIGITS` the IVR nodes take (menu,
language, input). A-D are on no phone: a menu counts one as a wrong key, an input as an
invalid entry."""
MENU_KEYS = tuple("123456789")
"""Keys a menu option may use, a subset of :data:`KEYPAD_KEYS`: 0 is the operator, '*' and
'#' repeat and confirm."""
