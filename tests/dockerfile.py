"""docker/Dockerfile parsed into instructions (no Docker engine needed): for the unit tests
of the file and the integration tests that run its commands."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[1] / "docker" / "Dockerfile"


@dataclass
class Instruction:
    stage: str
    op: str
    args: str

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form CMD/ENTRYPOINT/HEALTHCHECK CMD (else fails)."""
        text = self.args.split(" CMD ", 1)[-1] if self.op == "HEALTHCHECK" else self.args
        value = json.loads(text.strip())
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), text
        return value


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with their stage (``FROM x AS name``), continuation lines joined."""
    out: list[Instruction] = []
    stage = ""
    logical = re.sub(r"\\\n", " ", "\n".join(
        ln for ln in text.splitlines() if not ln.lstrip().startswith("#")
    ))
    for line in logical.splitlines():
        if not line.strip():
            continue
        op, _, args = line.strip().partition(" ")
        op = op.upper()
        if op == "FROM":
            m = re.search(r"\s+AS\s+(\S+)", args, re.I)
            stage = m.group(1) if m else args.split()[0]
        out.append(Instruction(stage, op, re.sub(r"\s+", " ", args).strip()))
    return out


INSTRUCTIONS = parse_dockerfile(DOCKERFILE.read_text())
