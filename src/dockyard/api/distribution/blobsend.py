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

Every server process runs one listener on the same port (SO_REUSEPORT): an asyncio event loop
in a thread of its own, where a connection costs a socket and a coroutine, not a thread, and the
kernel sends the file (`loop.sendfile`). It is asyncio's own selector loop, not uvloop: uvloop
0.23 has no `loop.sendfile` at all (NotImplementedError, even with fallback). Nobody needs
credentials to connect, so what a connection may hold is bounded (`Limits`): the time to send a
request head and to send the next one, the time a client may take nothing of a body, and the
connections per client address; a connection that is waiting for a request is closed to make
room for a new one rather than turning the new one away.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

from dockyard.api.bodies import natural, shown
from dockyard.api.distribution.blobconns import Connection, Connections, Limits, client_key
from dockyard.api.distribution.common import byte_range
from dockyard.api.distribution.httphead import MAX_HEAD, RequestHead, read_head, response_head
from dockyard.api.errors import API_VERSION_HEADER, envelope
from dockyard.oci.digest import Digest
from dockyard.oci.errors import BlobUnknown, Denied, OciError
from dockyard.storage.blobs import BlobStore

log = logging.getLogger(__name__)

LINK_SECONDS = 600
SIGNATURE_HEX = 64
MIN_CHUNK = 256 * 1024  # a body goes out in chunks, each sent within `Limits.stall_seconds`
MAX_CHUNK = 16 * 1024 * 1024
BACKLOG = 1024


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

    def check_target(self, target: str) -> Digest:
        """The digest a request target (`/blobs/<digest>?expires=..&signature=..`) may fetch."""
        url = urlsplit(target)
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
        return self.check(parts[2], expires[0], signature[0])


class _Listener:
    """Answers the connections of one process's listener."""

    def __init__(self, blobs: BlobStore, links: BlobLinks, limits: Limits) -> None:
        self._blobs = blobs
        self._links = links
        self._limits = limits
        self._connections = Connections(limits)
        self._tasks: set[asyncio.Task[Any]] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = Connection(client_key(writer.get_extra_info("peername")), task)
        try:
            refusal = self._connections.admit(conn)
            if refusal is not None:
                log.info("blob sender: refused a connection: %s", refusal.message)
                writer.write(_error_head_and_body(refusal, "GET", keep_alive=False))
                return
            await self._converse(conn, reader, writer)
        except (ConnectionError, TimeoutError) as exc:
            log.debug("blob sender: %s: %r", conn.client, exc)
        except asyncio.CancelledError:
            # closed for another connection, or the listener closes: the task ends here, as
            # Python 3.11's StreamReaderProtocol asks a cancelled task for its exception
            log.debug("blob sender: closed a connection of %s", conn.client)
        except Exception:
            log.exception("blob sender: a request from %s failed", conn.client)
        finally:
            self._connections.forget(conn)
            self._tasks.discard(task)
            writer.close()

    async def close(self) -> None:
        """End every connection, waiting or sending."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _converse(
        self, conn: Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Answer one request after another until the client (or a limit) ends it."""
        limits = self._limits
        wait = limits.header_seconds  # for the first request; then idle_seconds
        while True:
            try:
                head = await read_head(reader, wait, limits.header_seconds)
            except OciError as exc:  # not a request we can read: the bytes after it are lost
                writer.write(_error_head_and_body(exc, "GET", keep_alive=False))
                return
            if head is None:
                return
            self._connections.busy(conn)
            keep_alive = head.keep_alive and not head.has_body
            await self._answer(head, writer, keep_alive=keep_alive)
            if not keep_alive:
                return
            self._connections.waiting(conn)
            wait = limits.idle_seconds

    async def _answer(
        self, head: RequestHead, writer: asyncio.StreamWriter, *, keep_alive: bool
    ) -> None:
        try:
            digest = self._links.check_target(head.target)
            handle = self._open(digest)
        except OciError as exc:
            writer.write(_error_head_and_body(exc, head.method, keep_alive=keep_alive))
            await self._drain(writer)
            return
        with handle:
            size = os.fstat(handle.fileno()).st_size
            ranged = bool(head.fields.get("range"))  # as /v2: an empty Range is none
            try:
                start, end = byte_range(head.fields.get("range"), size)
            except OciError as exc:
                writer.write(_error_head_and_body(exc, head.method, keep_alive=keep_alive))
                await self._drain(writer)
                return
            fields = {
                **_BLOB_FIELDS,
                "Content-Length": str(end - start + 1),
                "Docker-Content-Digest": str(digest),
                "ETag": f'"{digest}"',
            }
            if ranged:
                fields["Content-Range"] = f"bytes {start}-{end}/{size}"
            writer.write(response_head(206 if ranged else 200, fields, keep_alive=keep_alive))
            if head.method == "GET":
                await self._send_file(writer.transport, handle, start, end - start + 1)
            else:
                await self._drain(writer)

    def _open(self, digest: Digest) -> BinaryIO:
        path = self._blobs.local_path(digest)
        try:
            if path is None:
                raise FileNotFoundError(digest)
            return open(path, "rb")  # a local open: no thread hop for microseconds
        except FileNotFoundError:
            raise BlobUnknown(f"blob {digest} is not stored here (any more)") from None

    async def _drain(self, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(self._limits.stall_seconds):
            await writer.drain()

    async def _send_file(
        self, transport: asyncio.WriteTransport, handle: BinaryIO, offset: int, count: int
    ) -> None:
        """`count` bytes of `handle` from `offset`, sent by the kernel (sendfile(2)).

        In chunks, each of which the client must take within `stall_seconds`: a client that
        stops reading is dropped. A chunk is about a second's worth at the rate the client took
        the last one (at least MIN_CHUNK), so a slow client is not.
        """
        loop = asyncio.get_running_loop()
        chunk = MIN_CHUNK
        while count:
            if transport.is_closing():
                raise ConnectionResetError("the client closed the connection mid-body")
            size, started = min(chunk, count), loop.time()
            try:
                async with asyncio.timeout(self._limits.stall_seconds):
                    sent = await loop.sendfile(transport, handle, offset, size, fallback=False)
            except asyncio.SendfileNotAvailableError as exc:  # the socket failed at once
                raise ConnectionResetError(str(exc)) from exc
            if sent != size:
                raise OSError(f"blob file ended {size - sent} bytes early (changed on disk?)")
            offset, count = offset + size, count - size
            rate = size / max(loop.time() - started, 0.001)
            chunk = int(max(MIN_CHUNK, min(MAX_CHUNK, rate)))


_BLOB_FIELDS = {
    **API_VERSION_HEADER,
    "Content-Type": "application/octet-stream",
    "Accept-Ranges": "bytes",
    "Cache-Control": f"private, max-age={LINK_SECONDS}",
}


def _error_head_and_body(exc: OciError, method: str, *, keep_alive: bool) -> bytes:
    """The error envelope of api/errors.py as a whole answer (HEAD: no body, as on /v2)."""
    fields, body = envelope(exc)
    if method == "HEAD":
        body = b""
    fields["Content-Length"] = str(len(body))
    return response_head(exc.status, fields, keep_alive=keep_alive) + body


def _listening_socket(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # every server process listens on this port; the kernel spreads the connections
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class BlobSender:
    """The listener of one server process: bound when made, serving after `start`, closed
    (no new connections, and every connection ended) by `close`."""

    def __init__(
        self,
        blobs: BlobStore,
        links: BlobLinks,
        host: str,
        port: int,
        limits: Limits | None = None,
    ) -> None:
        self._socket = _listening_socket(host, port)
        self._listener = _Listener(blobs, links, limits or Limits())
        self._loop = asyncio.SelectorEventLoop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="blob-sender", daemon=True)

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        except Exception:
            log.exception("blob sender stopped")
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        server = await asyncio.start_server(
            self._listener.serve, sock=self._socket, limit=MAX_HEAD, backlog=BACKLOG
        )
        try:
            await self._stop.wait()
        finally:
            server.close()
            await self._listener.close()

    def close(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop ended on its own meanwhile
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=10)
        elif self._thread.ident is None:  # never started
            self._socket.close()
            self._loop.close()
