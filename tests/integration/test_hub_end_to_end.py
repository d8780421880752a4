"""The hub end to end, over real sockets, as its users drive it: an upstream catalog whose
images are in one `docker-registry` and their attestations in a second one; a site admin adds
it to the catalog, an organization owner mirrors it (`dockyard catalog` / `dockyard mirror`);
upstream pushes a new tag and notifies; the tag and its attestation arrive and a webhook
receiver is told; made public, the mirror pauses; stopped, nothing more arrives."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from dockyard.client.settings import Credential
from dockyard.oci.digest import Digest
from dockyard.oci.reference import Reference
from support.cli import Cli
from support.inprocess import basic
from support.ocilayout import build_artifact, build_image
from support.peers import DockerRegistry, DockerRegistryFactory, DockyardServer, wait_until
from support.remote import Peer, push, remote

pytestmark = pytest.mark.peers
ATTESTATION = "application/vnd.in-toto+json"
OWNER_PASSWORD = "olivia-password"


@dataclass
class Receiver:
    url: str
    got: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback (a CI system, say) that records every payload."""
    found = Receiver("")

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            found.got.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    found.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()


def release(images: DockerRegistry, attestations: DockerRegistry, tag: str) -> str:
    """Publish `dhi/python:<tag>` and its signed provenance in the attestation registry."""

    async def main() -> str:
        up = Peer(images.host, remote(images.host))
        att = Peer(attestations.host, remote(attestations.host))
        try:
            image = build_image({"usr/bin/python3": f"python {tag}"})
            manifest = await push(up, up.ref(f"dhi/python:{tag}"), image)
            provenance = build_artifact(
                manifest.descriptor().to_json(), ATTESTATION, f"provenance of {tag}".encode()
            )
            at = att.ref("dhi/python").with_digest(provenance.digest)
            await push(att, at, provenance)
            return str(manifest.digest)
        finally:
            await up.registry.close()
            await att.registry.close()

    return asyncio.run(main())


def mirrored(server: DockyardServer, tag: str) -> tuple[str | None, int]:
    """The digest `acme/dhi-python:<tag>` has in Dockyard, and how many referrers it has."""

    async def main() -> tuple[str | None, int]:
        home = remote(server.host, Credential(username="olivia", password=OWNER_PASSWORD))
        try:
            ref = Reference.parse(f"{server.host}/acme/dhi-python:{tag}")
            found = await home.manifest_head(ref)
            if found is None:
                return None, 0
            return str(found.digest), len(await home.referrers(ref, found.digest))
        finally:
            await home.close()

    return asyncio.run(main())


def test_mirror_sync_notify_webhook_pause_and_stop(
    docker_registry_factory: DockerRegistryFactory,
    dockyard_server_factory: Callable[..., DockyardServer],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    images, attestations = docker_registry_factory(), docker_registry_factory()
    server = dockyard_server_factory(env={"DOCKYARD_WEBHOOK_ALLOW_PRIVATE": "true"})
    api = f"{server.url}/api/v1"
    owner = basic("olivia", OWNER_PASSWORD)
    admin_cli, owner_cli = Cli(tmp_path / "admin"), Cli(tmp_path / "olivia")
    for cli, user, password in (
        (admin_cli, "admin", server.admin_password),
        (owner_cli, "olivia", OWNER_PASSWORD),
    ):
        cli.env["DOCKYARD_SERVER"] = server.url
        cli("registry", "set", server.host, "--tls", "disabled")
        if user == "olivia":
            admin_cli("admin", "user", "create", "olivia", "--password-stdin", "--data",
                      server.data, input=OWNER_PASSWORD)  # fmt: skip
            admin_cli("admin", "org", "create", "acme", "--owner", "olivia", "--data", server.data)
        cli("registry", "login", "-u", user, "--pass-stdin", server.host, input=password)
    first = release(images, attestations, "3.13")

    # a site admin adds the upstream; its attestations live in another registry
    added = admin_cli(
        "catalog", "add", "python", "--source", f"{images.host}/dhi/python", "--tls", "disabled",
        "--attestations", f"{attestations.host}/dhi/python", "--attestations-tls", "disabled",
        "--description", "Python, hardened",
    )  # fmt: skip
    hook_url = added.split("upstream notifies: ", 1)[1].split()[0]

    # only an owner may mirror; the owner mirrors and waits for the first sync
    refused = admin_cli("mirror", "create", "python", "--org", "nobody", code=1)
    assert "no organization named 'nobody'" in refused
    created = json.loads(
        owner_cli("mirror", "create", "python", "--org", "acme", "--wait", "--format", "json")
    )
    assert (created["repository"], created["tags_done"], created["tags_total"]) == (
        "acme/dhi-python",
        1,
        1,
    )
    assert mirrored(server, "3.13") == (first, 1)
    shown = json.loads(owner_cli("catalog", "show", "python", "--format", "json"))
    assert [m["repository"] for m in shown["mirrored_to"]] == ["acme/dhi-python"]
    assert requests.get(f"{server.url}/v2/acme/dhi-python/tags/list", timeout=10).status_code == 401

    # a webhook on the mirrored repository
    hook = requests.post(
        f"{api}/repositories/acme/dhi-python/-/webhooks",
        json={"name": "ci", "url": receiver.url},
        headers=owner,
        timeout=10,
    )
    assert hook.status_code == 201, hook.text

    # upstream pushes a new tag and notifies: it arrives with its attestation
    second = release(images, attestations, "3.14")
    notified = requests.post(
        hook_url, json={"push_data": {"tag": "3.14"}, "repository": {"repo_name": "dhi/python"}},
        timeout=10,
    )  # fmt: skip
    assert (notified.status_code, notified.json()) == (202, {"queued": 1})
    wait_until(lambda: mirrored(server, "3.14") == (second, 1), timeout=60, what="3.14")
    wait_until(lambda: bool(receiver.got), timeout=60, what="the webhook delivery")
    payload = receiver.got[0]
    assert payload["push_data"]["tag"] == "3.14"
    assert payload["push_data"]["digest"] == second
    assert payload["repository"]["repo_name"] == "acme/dhi-python"
    assert payload["repository"]["is_private"] is True

    # made public, the mirror pauses and says why; private again, it resumes
    mirror_id = created["id"]
    public = requests.patch(
        f"{api}/repositories/acme/dhi-python", json={"visibility": "public"}, headers=owner,
        timeout=10,
    )  # fmt: skip
    assert public.status_code == 200, public.text
    third = release(images, attestations, "3.15")
    time.sleep(1.2)  # the server's read cache holds repository rows for up to a second
    requests.post(hook_url, json={}, timeout=10).raise_for_status()

    def status() -> dict[str, Any]:
        found: dict[str, Any] = json.loads(
            owner_cli("mirror", "show", str(mirror_id), "--format", "json")
        )
        return found

    wait_until(lambda: status()["status"] == "paused", timeout=60, what="the pause")
    assert "must stay private" in status()["status_reason"]
    assert mirrored(server, "3.15") == (None, 0)
    requests.patch(
        f"{api}/repositories/acme/dhi-python", json={"visibility": "private"}, headers=owner,
        timeout=10,
    ).raise_for_status()  # fmt: skip
    wait_until(lambda: mirrored(server, "3.15") == (third, 1), timeout=60, what="resuming")

    # stopped: the repository and its images stay, nothing more arrives
    assert "stopped mirroring into acme/dhi-python" in owner_cli("mirror", "stop", str(mirror_id))
    release(images, attestations, "3.16")
    stopped = requests.post(hook_url, json={}, timeout=10)
    assert stopped.json() == {"queued": 0}
    runs = status()["runs"]
    time.sleep(2)
    assert mirrored(server, "3.16") == (None, 0)
    assert mirrored(server, "3.13") == (first, 1)
    assert status()["runs"] == runs
    assert [p["push_data"]["tag"] for p in receiver.got] == ["3.14", "3.15"]
    digests = {p["push_data"]["digest"] for p in receiver.got}
    assert digests == {second, third}
    assert all(Digest.parse(d) for d in digests)
