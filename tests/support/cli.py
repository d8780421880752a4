"""`dockyard …` run as its users run it: a subprocess with its own settings."""

from __future__ import annotations

import json
import os
from pathlib import Path

from support.peers import DOCKYARD_BIN, run


class Cli:
    """`dockyard …` with its own `$DOCKYARD_CONFIG` (and no Docker config)."""

    def __init__(self, base: Path) -> None:
        self.config = base / "dockyard-config"
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DOCKYARD_", "DOCKER_"))
        }
        self.env["DOCKYARD_CONFIG"] = str(self.config)
        self.env["DOCKER_CONFIG"] = str(base / "docker-config")

    def __call__(self, *args: str | Path, input: str | None = None, code: int = 0) -> str:
        result = run([DOCKYARD_BIN, *args], input=input, env=self.env, check=False)
        assert result.returncode == code, (
            f"dockyard {' '.join(map(str, args))} exited {result.returncode}, expected {code}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
        return result.stdout if code == 0 else result.stderr

    def referrers(self, ref: str, *flags: str) -> list[str]:
        listed = json.loads(self("artifact", "list", ref, "--format", "json", *flags))
        return sorted(m["digest"] for m in listed["manifests"])
