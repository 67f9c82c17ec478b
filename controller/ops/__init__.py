"""Operations shared by the CLI (``callctl``) and the admin HTTP API, one module per operation.

Every operation is an ``async`` function taking a :class:`~controller.ops.context.Context`
(one RedisStore, the settings, and the running Controller when the admin API runs inside it)
and returning plain JSON-able data, or raising :class:`~controller.ops.errors.OpsError` with
an HTTP-like ``status`` (400 bad input, 404 not found, 409 nothing published, 503 Redis/ARI
unavailable), a message, and the offending input ``field`` (``"windows[1].start"``). The CLI
maps statuses to exit codes (:func:`~controller.ops.errors.exit_code`); the admin API returns
them as they are. The CLI's command modules (``controller/tools/cli/``) and the admin API's
route modules (``controller/admin/routes/``) are named like the operations they call.

User changes (opt-out, availability, alternate) are runtime overrides in the ``user:<id>``
hash that the call runtime reads on every call (``RedisStore.facts``): they take effect on the
next call without a publish. Every change is audited in the ``audit`` stream (who, when, what,
old and new value). Blocklist changes are audited too and announced to the controllers'
blocklist caches (:mod:`controller.shell.blocklist`).

``simulate`` (:mod:`controller.ops.dryrun`) walks a published (or draft) flow with the
engine's pure generator (:func:`controller.core.engine.run_call`, driven by
:mod:`controller.ops.simulate`), answering its commands from the current Redis state (user
facts, sticky agents, round-robin cursors, failover tests, blocklist) without changing any of
it, and from the given digits and time: no Asterisk involved.

Modules: ``context`` and ``errors`` (what every operation shares), ``parse`` (operators' input,
pure), ``flows`` (the published flows), ``status``, ``calls``, ``users``, ``audit``,
``departments``, ``blocklist``, ``failover``, ``dryrun``; ``simulate`` and ``timeline`` (the
simulation driver and a trace in words).
"""
