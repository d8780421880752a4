"""A command imports only what it needs: `dockyard sync ...` (run every few minutes by cron
or a CI job, mostly start-up when nothing changed) must not pay for the server, the database
layer or the hub."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import json, sys
sys.argv = ["dockyard", *sys.argv[1:]]
from dockyard.cli.main import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""
HEAVY = ("sqlalchemy", "granian", "starlette", "fastapi", "jinja2", "dockyard.hub", "dockyard.api")


def _modules(*argv: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *argv], capture_output=True, text=True, timeout=60
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_a_sync_command_imports_no_server_database_or_hub() -> None:
    loaded = _modules("sync", "once", "--help")
    assert "dockyard.cli.sync" in loaded
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY or m.startswith(HEAVY))
    assert heavy == []


def test_the_whole_tree_is_there_for_the_top_level_help() -> None:
    loaded = _modules("--help")
    assert {"dockyard.cli.sync", "dockyard.cli.admin", "dockyard.cli.webhook"} <= loaded
