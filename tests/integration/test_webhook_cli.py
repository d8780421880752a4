"""`dockyard webhook` end to end: a site admin drives `dockyard serve` (with
`webhook_allow_private`, as a loopback receiver needs) from the CLI; a receiver on 127.0.0.1
verifies every delivery with the `standardwebhooks` library and refuses what does not verify."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks

from dockyard.client.settings import Credential
from support.cli import Cli
from support.ocilayout import build_image
from support.peers import DockyardServer, wait_until
from support.remote import Peer, push, remote

pytestmark = pytest.mark.peers


@dataclass
class Delivered:
    headers: dict[str, str]
    body: bytes
    verdict: str


@dataclass
class VerifyingReceiver:
    """A receiver on loopback: 200 for a request that verifies with `secret`, else 401."""

    url: str = ""
    secret: str | None = None
    got: list[Delivered] = field(default_factory=list)

    def judge(self, headers: dict[str, str], body: bytes) -> str:
        if self.secret is None:
            return "no secret yet"
        try:
            standardwebhooks.Webhook(self.secret).verify(body, headers)
        except standardwebhooks.WebhookVerificationError as exc:
            return str(exc)
        return "verified"


@pytest.fixture
def receiver() -> Iterator[VerifyingReceiver]:
    found = VerifyingReceiver()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = dict(self.headers.items())
            verdict = found.judge(headers, body)
            found.got.append(Delivered(headers, body, verdict))
            self.send_response(200 if verdict == "verified" else 401)
            self.end_headers()
            self.wfile.write(verdict.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    found.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()


def push_tag(server: DockyardServer, tag: str) -> str:
    """Push a small image to `acme/app:<tag>` as the site admin; its digest."""

    async def main() -> str:
        admin = Credential(username="admin", password=server.admin_password)
        peer = Peer(server.host, remote(server.host, admin))
        try:
            image = build_image({"etc/release": f"app {tag}"})
            return str((await push(peer, peer.ref(f"acme/app:{tag}"), image)).digest)
        finally:
            await peer.registry.close()

    return asyncio.run(main())


def test_webhook_cli_creates_lists_shows_deliveries_redelivers_and_deletes(
    dockyard_server_factory: Callable[..., DockyardServer],
    receiver: VerifyingReceiver,
    tmp_path: Path,
) -> None:
    server = dockyard_server_factory(env={"DOCKYARD_WEBHOOK_ALLOW_PRIVATE": "true"})
    cli = Cli(tmp_path)
    cli.env["DOCKYARD_SERVER"] = server.url
    cli.env["COLUMNS"] = "200"  # tables fold cells to the terminal; these checks read words
    cli("registry", "set", server.host, "--tls", "disabled")
    cli("registry", "login", "-u", "admin", "--pass-stdin", server.host,
        input=server.admin_password)  # fmt: skip
    cli("admin", "org", "create", "acme", "--owner", "admin", "--data", server.data)
    push_tag(server, "1")

    created = json.loads(
        cli("webhook", "create", "acme/app", "ci", receiver.url, "--generate-secret",
            "--format", "json")
    )  # fmt: skip
    assert created["secret"].startswith("whsec_")
    assert (created["name"], created["url"], created["has_secret"]) == ("ci", receiver.url, True)
    receiver.secret = created["secret"]
    listed = cli("webhook", "list", "acme/app")
    assert "ci" in listed
    # the table folds long cells to the terminal's width: compare the URL in JSON
    (webhook,) = json.loads(cli("webhook", "list", "acme/app", "--format", "json"))
    assert webhook["url"] == receiver.url

    # a push is delivered, signed so that the receiver's library verifies it
    digest = push_tag(server, "2")
    wait_until(lambda: bool(receiver.got), timeout=60, what="the delivery")
    first = receiver.got[0]
    assert first.verdict == "verified"
    payload = json.loads(first.body)
    assert (payload["push_data"]["tag"], payload["push_data"]["digest"]) == ("2", digest)

    def deliveries() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(
            cli("webhook", "deliveries", "acme/app", "ci", "--format", "json")
        )
        return found

    wait_until(lambda: deliveries()[0]["status"] == "delivered", timeout=30, what="delivered")
    [delivery] = deliveries()
    assert (delivery["attempts"], delivery["response_status"]) == (1, 200)
    assert delivery["response_excerpt"] == "verified"
    assert delivery["event_id"] == first.headers["webhook-id"]
    table = cli("webhook", "deliveries", "acme/app", str(created["id"]))
    assert "delivered" in table

    # redelivered: the same id and body, its own timestamp, verified again
    queued = cli("webhook", "redeliver", "acme/app", "ci", str(delivery["id"]))
    assert queued.startswith("queued job ")
    wait_until(lambda: len(receiver.got) == 2, timeout=60, what="the redelivery")
    second = receiver.got[1]
    assert second.verdict == "verified"
    assert second.body == first.body
    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    wait_until(lambda: deliveries()[0]["attempts"] == 2, timeout=30, what="two attempts")

    # forbidden addresses are refused by the server, IPv6 forms of IPv4 ones included
    for url in ("http://169.254.169.254/", "http://[::ffff:0:a9fe:a9fe]/"):
        refused = cli("webhook", "create", "acme/app", "metadata", url, code=1)
        assert "cloud metadata service" in refused
    missing = cli("webhook", "deliveries", "acme/app", "nope", code=1)
    assert "no webhook named 'nope'" in missing

    edited = json.loads(
        cli("webhook", "edit", "acme/app", "ci", "--name", "ci-2", "--inactive", "--format", "json")
    )
    assert (edited["name"], edited["active"], edited["has_secret"]) == ("ci-2", False, True)
    assert cli("webhook", "delete", "acme/app", "ci-2").strip() == (
        f"deleted webhook {created['id']} of acme/app"
    )
    assert json.loads(cli("webhook", "list", "acme/app", "--format", "json")) == []
