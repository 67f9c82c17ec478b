"""The flows the benchmarks route on, generated, and the matching dialplan-native DIDs.

Each benchmark call must be answered by an agent who is not already on a call (the controller
skips busy users), so the controller side has one DID -> department -> user per concurrent
call: ``+1555700NNNN`` rings user ``cNNNN`` (endpoint agent3, answers), ``+1555710NNNN`` rings
``fNNNN`` (endpoint agent1, busy) whose alternate ``sip:agent2`` answers. All those users share
the two or three SIPp phones. The dialplan baseline does the same jobs on ``+1999700NNNN``
(``Dial(PJSIP/agent3)``) and ``+1999710NNNN`` (agent1, then agent2 on BUSY); see
``dialplan/callctl-dialplan.conf``. ``+15557200`` hangs up at once (event-loop bench).
"""

from __future__ import annotations

CTL_CALL = "+1555700"
CTL_FAILOVER = "+1555710"
NATIVE_CALL = "+1999700"
NATIVE_FAILOVER = "+1999710"
EVENT_DID = "+15557200"
SOAK_DID = "+15557300"


# Nobody answered: the caller is hung up (never voicemail), so SIPp counts the call failed.
BYE = "fallback: bye}, bye: {type: hangup}}"


def did(prefix: str, n: int) -> str:
    return f"{prefix}{n:04d}"


def bench_yaml(k_call: int, k_failover: int) -> str:
    out = ["settings:", "  timezone: UTC", "  forward_to_alternate: true", "users:"]
    for n in range(k_call):
        out.append(f"  c{n:04d}: {{name: C{n}, endpoint: agent3}}")
    for n in range(k_failover):
        out.append(f'  f{n:04d}: {{name: F{n}, endpoint: agent1, alternate: "sip:agent2"}}')
    out.append("departments:")
    for n in range(k_call):
        out.append(f"  dc{n:04d}: {{strategy: serial, members: [c{n:04d}], ring_time: 20}}")
    for n in range(k_failover):
        out.append(f"  df{n:04d}: {{strategy: serial, members: [f{n:04d}], ring_time: 20}}")
    out.append("flows:")
    for n in range(k_call):
        out += [f"  c{n:04d}:", f'    dids: ["{did(CTL_CALL, n)}"]', "    entry: ring",
                f"    nodes: {{ring: {{type: department, department: dc{n:04d}, {BYE}"]
    for n in range(k_failover):
        out += [f"  f{n:04d}:", f'    dids: ["{did(CTL_FAILOVER, n)}"]', "    entry: ring",
                f"    nodes: {{ring: {{type: department, department: df{n:04d}, {BYE}"]
    out += ["  ev:", f'    dids: ["{EVENT_DID}"]', "    entry: bye",
            "    nodes: {bye: {type: hangup}}"]
    return "\n".join(out) + "\n"
