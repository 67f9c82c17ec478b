"""Every Redis key callctl uses, built from the prefix (``CALLCTL_REDIS_PREFIX``).

One place for the names: README "Redis keys" lists the same keys, their types and TTLs.
``Keys(prefix).call("X")`` is ``<prefix>call:X``; keys without a parameter are attributes.
"""

from __future__ import annotations

DEFAULT_PREFIX = "callctl:"


class Keys:
    """The key names under one prefix."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        p = self.prefix = prefix
        # calls and their owners (controller.adapters.redis.leases, controller.cluster.manager)
        self.calls_live = f"{p}calls:live"
        """zset: live call ids by start time."""
        self.controllers = f"{p}controllers"
        """zset: controller id -> presence expiry (ms)."""
        # routing state
        self.lastcall = f"{p}lastcall"
        """zset: user -> end of their last answered call (longest-idle)."""
        # records
        self.calllog = f"{p}calllog"
        """stream: one record per finished call."""
        self.audit = f"{p}audit"
        """stream: who changed what, when."""
        # blocked callers (controller.shell.blocklist, controller.ops)
        self.blocklist = f"{p}blocklist"
        """hash: pattern -> JSON {reason, by, at}."""
        self.blocklist_hits = f"{p}blocklist:hits"
        """hash: pattern -> rejected calls."""
        self.blocklist_blocked = f"{p}blocklist:blocked"
        """string: rejected calls in all (INCR)."""
        self.blocklist_version = f"{p}blocklist:version"
        """string: change counter (INCR)."""
        self.blocklist_changed = f"{p}blocklist:changed"
        """pub/sub: a pattern was added or removed."""
        # failover tests
        self.failover_tests = f"{p}failover:tests"
        """hash: line (DID or department) -> test end (epoch s)."""
        self.failover_log = f"{p}failover:log"
        """stream: failover test start/stop/expiry and test calls."""
        self.failover_changed = f"{p}failover:changed"
        """pub/sub: a failover test started or stopped."""
        # published flows (controller.adapters.redis.flowstore)
        self.flows_version = f"{p}flows:version"
        """string: the last version number handed out (INCR)."""
        self.flows_live = f"{p}flows:live"
        """string: the version calls are routed on."""
        self.flows_meta = f"{p}flows:meta"
        """hash: version -> JSON summary."""
        self.flows_v = f"{p}flows:v:"
        """The start of ``flows:v:<n>`` (the publish script appends the number)."""
        self.flows_published = f"{p}flows:published"
        """pub/sub: the new live version number."""

    # ------------------------------------------------------------------ calls

    def call(self, call_id: str) -> str:
        """hash: a live call's state (for adoption)."""
        return f"{self.prefix}call:{call_id}"

    def node_calls(self, node: str) -> str:
        """set: live call ids on a node."""
        return f"{self.prefix}calls:node:{node}"

    def call_lease(self, call_id: str) -> str:
        """string: token of the controller driving the call (PX lease time)."""
        return f"{self.prefix}lease:call:{call_id}"

    def node_lease(self, node: str) -> str:
        """string: token of the controller holding the node (PX lease time). ``"*"``: the
        scan pattern."""
        return f"{self.prefix}lease:node:{node}"

    def controller(self, controller_id: str) -> str:
        """string: JSON presence of a live controller (PX lease time)."""
        return f"{self.prefix}controller:{controller_id}"

    def trace(self, call_id: str) -> str:
        """string: JSON decision trace of a finished call."""
        return f"{self.prefix}trace:{call_id}"

    # ------------------------------------------------------------------ routing

    def busy(self, user: str) -> str:
        """string: the call id the user is booked for."""
        return f"{self.prefix}busy:{user}"

    def user(self, user: str) -> str:
        """hash: the user's runtime overrides."""
        return f"{self.prefix}user:{user}"

    def cursor(self, name: str) -> str:
        """string: a counter the flow names (``NextCursor("rr:<department>")``)."""
        return f"{self.prefix}{name}"

    def rr(self, department: str) -> str:
        """string: a department's round-robin cursor (INCR)."""
        return self.cursor(f"rr:{department}")

    def sticky(self, department: str, number: str) -> str:
        """string: who last answered this caller in this department."""
        return f"{self.prefix}sticky:{department}:{number}"

    # ------------------------------------------------------------------ counters

    def stats(self, key: str) -> str:
        """hash: answered/missed counters; ``key`` is ``agent:<user>`` or ``dept:<id>``
        (``controller.core.calllog.counter_updates``)."""
        return f"{self.prefix}stats:{key}"

    def agent_stats(self, user: str) -> str:
        return self.stats(f"agent:{user}")

    def dept_stats(self, department: str) -> str:
        return self.stats(f"dept:{department}")

    # ------------------------------------------------------------------ flows

    def flow(self, version: int) -> str:
        """string: published flow version ``version`` (JSON)."""
        return f"{self.flows_v}{version}"
