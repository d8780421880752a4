"""The README's walkthrough, run as a new user types it on a fresh machine: its shell block
against a real `dockyard serve`, offline, with a fresh client config and the example image
and regsync config from `examples/` (only the server's address and data folder differ)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from support.cli import Cli
from support.peers import DOCKYARD_BIN, DockyardServer, run

pytestmark = pytest.mark.peers

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(
    r"<!-- walkthrough:[^\n]*-->\n```sh\n(?P<commands>.*?)```\n<!-- walkthrough: end -->", re.S
)
README_ADDRESS = "127.0.0.1:5000"


def walkthrough() -> str:
    found = BLOCK.search((ROOT / "README.md").read_text())
    assert found is not None, "README.md has no walkthrough block"
    return found.group("commands")


def test_the_readme_walkthrough_works_offline(
    dockyard_server: DockyardServer, tmp_path: Path
) -> None:
    commands = walkthrough()
    assert "examples/make-example-image.py" in commands  # no image taken from elsewhere
    work = tmp_path / "work"
    shutil.copytree(ROOT / "examples", work / "examples")
    regsync = work / "examples" / "regsync.yaml"
    regsync.write_text(regsync.read_text().replace(README_ADDRESS, dockyard_server.host))
    cli = Cli(tmp_path)
    env = {
        **cli.env,
        "PATH": f"{DOCKYARD_BIN.parent}:/usr/bin:/bin",
        "DOCKYARD_ADMIN_PASSWORD": dockyard_server.admin_password,
        "DOCKYARD_DATA": str(dockyard_server.data),  # where `./data` is in the README
    }
    script = "set -euo pipefail\n" + commands.replace(README_ADDRESS, dockyard_server.host)
    done = run(["bash", "-c", script], env=env, cwd=work, check=False)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"

    assert (work / "hello.tar").is_file()
    host = dockyard_server.host
    digests = re.findall(r"^sha256:[0-9a-f]{64}$", done.stdout, re.M)
    assert len(digests) == 1, done.stdout  # what `manifest head` printed
    # the last sign-in was the organization token's: it reads what it imported
    assert cli("manifest", "head", f"{host}/acme/hello:1.0").strip() == digests[0]
    admin = Cli(tmp_path / "checker")
    admin("registry", "set", host, "--tls", "disabled")
    admin("registry", "login", "-u", "admin", "--pass-stdin", host,
          input=dockyard_server.admin_password)  # fmt: skip
    assert admin("manifest", "head", f"{host}/admin/hello-sync:1.0").strip() == digests[0]
