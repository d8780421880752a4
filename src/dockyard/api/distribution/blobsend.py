"""A second listener that sends big blobs with sendfile(2), for clients redirected to it.

Granian sends a file named by an ASGI `pathsend` response in 128 KiB reads and writes through
tokio's blocking pool: 0.38-0.46 s of server CPU per GB pulled here, where sendfile takes
0.07-0.16 s and leaves the rest of the machine to the clients. With `blob_listen` set, a GET
on /v2 of a blob of at least `blob_redirect_min_bytes` is answered 307 with a signed link to
this listener, as distribution's redirect middleware answers with a presigned storage URL, and
the listener hands the file to the kernel.

A link names only the digest and when it expires; its signature (HMAC-SHA256 with a key kept
in the site settings) is what stands for the access check the /v2 request passed. Whoever
holds a link may fetch that blob until it expires (LINK_SECONDS), like a presigned URL.

Every server process runs one listener on the same port (SO_REUSEPORT), one thread per
connection; the threads only parse a request line and a few headers, then wait in sendfile.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

from dockyard.api.distribution.common import byte_range, natural, shown
from dockyard.api.errors import API_VERSION_HEADER
from dockyard.oci.digest import Digest
from dockyard.oci.errors import BlobUnknown, Denied, OciError
from dockyard.storage.blobs import BlobStore

log = logging.getLogger(__name__)

LINK_SECONDS = 600
IDLE_SECONDS = 60.0  # a connection that sends nothing (or takes nothing) this long is closed
MAX_CONNECTIONS = 256  # per server process; more are closed at once
SIGNATURE_HEX = 64


class BlobLinks:
    """Makes and checks the signed links `/blobs/<digest>?expires=<unix>&signature=<hex>`."""

    def __init__(
        self,
        key: bytes,
        base_url: str,
        min_size: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self.base_url = base_url.rstrip("/")
        self.min_size = min_size
        self._clock = clock

    def _signature(self, digest: str, expires: int) -> str:
        return hmac.new(self._key, f"{digest}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def url(self, digest: Digest) -> str:
        expires = int(self._clock()) + LINK_SECONDS
        signature = self._signature(str(digest), expires)
        return f"{self.base_url}/blobs/{digest}?expires={expires}&signature={signature}"

    def check(self, digest_text: str, expires_text: str, signature: str) -> Digest:
        """The digest a link names, if its signature holds and it has not expired."""
        digest = Digest.parse(digest_text)
        expires = natural(expires_text)
        if expires is None or len(signature) != SIGNATURE_HEX:
            raise Denied("this blob link is malformed: ask the registry for the blob again")
        if not hmac.compare_digest(self._signature(str(digest), expires), signature.lower()):
            raise Denied("this blob link's signature does not match: ask the registry again")
        if expires < self._clock():
            raise Denied(
                f"this blob link expired {int(self._clock()) - expires} s ago: "
                "ask the registry for the blob again"
            )
        return digest


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False  # closing does not wait for downloads in progress
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], blobs: BlobStore, links: BlobLinks) -> None:
        self.blobs = blobs
        self.links = links
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # every server process listens on this port; the kernel spreads the connections
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("blob sender: %d connections already, refusing one", MAX_CONNECTIONS)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that goes away mid-download is ordinary; anything else is worth a trace
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            log.debug("blob sender: %s: %s", client_address, error)
        else:
            log.exception("blob sender: request from %s failed", client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a client fetches many blobs per connection
    default_request_version = "HTTP/1.1"  # so a garbled request line gets a status line back
    timeout = IDLE_SECONDS
    server: _Server
    error_content_type = "text/plain; charset=utf-8"
    error_message_format = "%(code)d %(message)s: %(explain)s\n"

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, *, send_body: bool) -> None:
        try:
            digest = self._checked_link()
            handle = self._open(digest)
        except OciError as exc:
            self._error(exc)
            return
        with handle:
            size = os.fstat(handle.fileno()).st_size
            try:
                start, end = byte_range(self.headers.get("Range"), size)
            except OciError as exc:
                self._error(exc)
                return
            ranged = bool(self.headers.get("Range"))  # as /v2: an empty Range is none
            self.send_response(206 if ranged else 200)
            for name, value in {
                **API_VERSION_HEADER,
                "Content-Type": "application/octet-stream",
                "Content-Length": str(end - start + 1),
                "Docker-Content-Digest": str(digest),
                "ETag": f'"{digest}"',
                "Accept-Ranges": "bytes",
                "Cache-Control": f"private, max-age={LINK_SECONDS}",
            }.items():
                self.send_header(name, value)
            if ranged:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if send_body:
                self.connection.sendfile(handle, start, end - start + 1)

    def _checked_link(self) -> Digest:
        url = urlsplit(self.path)
        parts = url.path.split("/")
        if len(parts) != 3 or parts[:2] != ["", "blobs"]:
            raise BlobUnknown(f"{shown(url.path)} is not a blob link (/blobs/<digest>?...)")
        try:
            query = parse_qs(url.query, max_num_fields=8)
        except ValueError:
            raise Denied("a blob link has one expires and one signature") from None
        expires, signature = query.get("expires", [""]), query.get("signature", [""])
        if len(expires) != 1 or len(signature) != 1:
            raise Denied("a blob link has one expires and one signature")
        return self.server.links.check(parts[2], expires[0], signature[0])

    def _open(self, digest: Digest) -> BinaryIO:
        path = self.server.blobs.local_path(digest)
        try:
            if path is None:
                raise FileNotFoundError(digest)
            return open(path, "rb")
        except FileNotFoundError:
            raise BlobUnknown(f"blob {digest} is not stored here (any more)") from None

    def _error(self, exc: OciError) -> None:
        body = json.dumps({"errors": [exc.to_json()]}).encode()
        self.send_response(exc.status)
        for name, value in {
            **API_VERSION_HEADER,
            **exc.headers,
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
        }.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def version_string(self) -> str:
        return "Dockyard"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("blob sender %s: " + format, self.client_address[0], *args)


class BlobSender:
    """The listener of one server process: bound when made, serving after `start`, closed
    (no new connections; downloads in progress go on) by `close`."""

    def __init__(self, blobs: BlobStore, links: BlobLinks, host: str, port: int) -> None:
        self._server = _Server((host, port), blobs, links)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="blob-sender", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()  # waits for serve_forever to return
        self._server.server_close()
