"""`dockyard catalog add` checks that the source answers, and `dockyard catalog edit` fixes an
entry: a real `dockyard serve` and a plain-HTTP CNCF distribution as the upstream."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from support.cli import Cli
from support.ocilayout import build_image
from support.peers import DOCKYARD_BIN, DockerRegistry, DockyardServer, run
from support.remote import Peer, push, remote

pytestmark = pytest.mark.peers


def _publish(upstream: DockerRegistry, *tags: str) -> None:
    async def main() -> None:
        peer = Peer(upstream.host, remote(upstream.host))
        try:
            for tag in tags:
                await push(peer, peer.ref(f"dhi/python:{tag}"), build_image({"v": tag}))
        finally:
            await peer.registry.close()

    asyncio.run(main())


def _admin(server: DockyardServer, tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "admin")
    cli.env["DOCKYARD_SERVER"] = server.url
    cli("registry", "set", server.host, "--tls", "disabled")
    cli(
        "registry", "login", "-u", "admin", "--pass-stdin", server.host, input=server.admin_password
    )
    return cli


def _both(cli: Cli, *args: str) -> subprocess.CompletedProcess[str]:
    result = run([DOCKYARD_BIN, *args], env=cli.env, check=False)
    assert result.returncode == 0, result.stderr
    return result


def test_catalog_add_checks_the_source_and_edit_fixes_it(
    docker_registry: DockerRegistry, dockyard_server: DockyardServer, tmp_path: Path
) -> None:
    _publish(docker_registry, "3.13", "3.13-dev")
    cli = _admin(dockyard_server, tmp_path)
    source = f"{docker_registry.host}/dhi/python"

    # the upstream speaks plain HTTP, and the entry says TLS: said at once, entry kept
    added = _both(cli, "catalog", "add", "python", "--source", source)
    assert "added python" in added.stdout
    assert "warning: python: the source does not answer" in added.stderr
    assert "dockyard catalog edit python --tls disabled" in added.stderr
    assert "dockyard catalog refresh python" in added.stderr

    changed = cli("catalog", "edit", "python", "--tls", "disabled", "--eol", r"3\.13-dev")
    assert "changed python: eol_pattern, source_tls" in changed
    assert "python: 2 tags in 2 variants read from upstream" in changed
    shown = json.loads(cli("catalog", "show", "python", "--format", "json"))
    assert (shown["source_tls"], shown["eol_pattern"]) == ("disabled", r"3\.13-dev")
    tags = {t["tag"]: t["eol"] for v in shown["variants"] for t in v["tags"]}
    assert tags == {"3.13": False, "3.13-dev": True}

    # a new source drops the tags read from the old one; '' removes the pattern
    cli("catalog", "edit", "python", "--source", f"{docker_registry.host}/dhi/none",
        "--eol", "", "--description", "gone", "--no-check")  # fmt: skip
    shown = json.loads(cli("catalog", "show", "python", "--format", "json"))
    assert (shown["variants"], shown["eol_pattern"], shown["description"]) == ([], None, "gone")

    assert "nothing to change" in cli("catalog", "edit", "python", code=2)
    refused = cli("catalog", "edit", "python", "--tls", "maybe", code=1)
    assert "source_tls" in refused
    unchecked = cli("catalog", "add", "ruby", "--source", source, "--tls", "disabled",
                    "--no-check")  # fmt: skip
    assert "ruby: not checked; its tags are read at every mirror sync" in unchecked
