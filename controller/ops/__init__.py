"""Operations shared by the CLI (``callctl``) and the admin HTTP API.

Every operation is an ``async`` method of :class:`Ops` returning plain JSON-able data, or
raising :class:`OpsError` with an HTTP-like ``status`` (400 bad input, 404 not found, 409
nothing published, 503 Redis/ARI unavailable), a message, and the offending input ``field``
(``"windows[1].start"``). The CLI maps statuses to exit codes (:func:`exit_code`); the admin
API returns them as they are.

User changes (opt-out, availability, alternate) are runtime overrides in the ``user:<id>``
hash that the call runtime reads on every call (``RedisStore.facts``): they take effect on the
next call without a publish. Every change is audited in the ``audit`` stream (who, when, what,
old and new value). Blocklist changes are audited too and announced to the controllers'
blocklist caches (:mod:`controller.shell.blocklist`).

``simulate`` walks a published (or draft) flow with the engine's pure generator
(:func:`controller.core.engine.run_call`), answering its commands from the current Redis state
(user facts, sticky agents, round-robin cursors, failover tests, blocklist) without changing
any of it, and from the given digits and time: no Asterisk involved.
"""
