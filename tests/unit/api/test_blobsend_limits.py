"""The sendfile listener against clients that hold connections without credentials: idle ones,
slow headers, bodies nobody reads, many connections from one address. All over real sockets.

The tests with a `sender` run their own listener on the app's blobs with short limits, so that
a limit is seen at work in a second, not in the default's ten; one test runs the app's own
listener with the defaults.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from dockyard.api.distribution.blobconns import Limits, client_key
from dockyard.api.distribution.blobsend import BlobSender
from dockyard.oci.digest import Digest
from support.inprocess import InProcess, running_app
from support.peers import free_port, wait_until

REPO = "team/app"
SMALL = bytes(range(256)) * 8  # 2,048 bytes
BIG = bytes(range(256)) * 4096 * 16  # 16 MiB: more than the kernel buffers of one connection
PATIENCE = 10.0  # how long a client here waits for what should take a fraction of that


@pytest_asyncio.fixture
async def app(tmp_path: Path) -> AsyncIterator[InProcess]:
    listen = f"127.0.0.1:{free_port()}"
    async with running_app(
        tmp_path / "data", blob_listen=listen, blob_redirect_min_bytes=1000
    ) as running:
        for data in (SMALL, BIG):
            await running.push_blob(REPO, data)
        yield running


def target(app: InProcess, data: bytes) -> str:
    """The path and query of a signed link to `data`."""
    links = app.state.blob_links
    assert links is not None
    url = urlsplit(links.url(Digest.parse("sha256:" + hashlib.sha256(data).hexdigest())))
    return f"{url.path}?{url.query}"


Sender = Callable[[Limits], int]


@pytest.fixture
def sender(app: InProcess) -> Iterator[Sender]:
    """Start a listener with these limits on the app's blobs and links; its port."""
    started: list[BlobSender] = []
    links = app.state.blob_links
    assert links is not None

    def start(limits: Limits) -> int:
        one = BlobSender(app.state.registry.store.blobs, links, "127.0.0.1", 0, limits)
        one.start()
        started.append(one)
        return one.port

    yield start
    for one in started:
        one.close()


def connect(port: int, source: str = "127.0.0.1", rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(PATIENCE)
    if rcvbuf is not None:  # before connecting, so the window stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def request(path: str, *fields: str, method: str = "GET") -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: blobs", *fields, "", ""]).encode()


def read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, lower-cased header fields, and whatever of the body came with them."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed after {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), {k.lower(): v for k, v in fields.items()}, rest


def read_response(
    sock: socket.socket, *, head_only: bool = False
) -> tuple[int, dict[str, str], bytes]:
    status, fields, body = read_head(sock)
    length = 0 if head_only else int(fields["content-length"])
    while len(body) < length:
        chunk = sock.recv(1 << 20)
        assert chunk, f"the connection closed {length - len(body)} bytes before the end"
        body += chunk
    return status, fields, body


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes the connection (within PATIENCE); what it sent is dropped."""
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return True


def open_ones(socks: list[socket.socket]) -> list[socket.socket]:
    """Those of these (non-blocking) sockets that the server has not closed."""
    still_open = []
    for one in socks:
        with contextlib.suppress(ConnectionResetError):
            try:
                one.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                still_open.append(one)
    return still_open


def test_client_addresses_count_per_ipv4_address_and_per_ipv6_64() -> None:
    assert client_key(("192.0.2.7", 5000)) == "192.0.2.7"
    assert client_key(("::ffff:192.0.2.7", 5000, 0, 0)) == "192.0.2.7"
    assert client_key(("2001:db8:1:2:aaaa::1", 5000, 0, 0)) == "2001:db8:1:2::/64"
    assert client_key(("2001:db8:1:2:bbbb::9", 5000, 0, 0)) == "2001:db8:1:2::/64"
    assert client_key(None) == "None"


async def test_600_idle_connections_from_one_address_leave_room_for_a_link(
    app: InProcess,
) -> None:
    """The app's own listener with the default limits: 600 connections that send nothing (as
    the finding's attack) do not keep a signed link from being served, on the same address;
    they are closed, the oldest first, and one address keeps at most `per_client`."""
    links = app.state.blob_links
    assert links is not None
    port = int(links.base_url.rsplit(":", 1)[1])
    idle = [connect(port) for _ in range(600)]
    try:
        with contextlib.closing(connect(port)) as sock:
            sock.sendall(request(target(app, SMALL)))
            assert read_response(sock)[::2] == (200, SMALL)
        for one in idle:
            one.setblocking(False)
        # the listener closes them as it admits new ones; the last closes may still be on
        # their way when the answer above arrives
        wait_until(
            lambda: len(open_ones(idle)) <= Limits().per_client,
            timeout=PATIENCE,
            what=f"at most {Limits().per_client} connections left open",
        )
        assert open_ones(idle)[-1] is idle[-1]  # the newest stay
    finally:
        for one in idle:
            one.close()


def test_a_head_sent_too_slowly_is_dropped(app: InProcess, sender: Sender) -> None:
    port = sender(Limits(header_seconds=0.5, idle_seconds=60))
    with contextlib.closing(connect(port)) as silent:  # connects and sends nothing
        assert closed_by_server(silent)
    with contextlib.closing(connect(port)) as half:  # half a request line, then nothing
        half.sendall(b"GET /blobs/sha256:0123")
        assert closed_by_server(half)
    # a byte every 50 ms never completes the head: the deadline is for all of it
    with contextlib.closing(connect(port)) as trickle:
        dropped = False
        for byte in request(target(app, SMALL)) * 10:
            try:
                trickle.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                dropped = True
                break
            time.sleep(0.05)
        assert dropped


def test_an_idle_kept_alive_connection_is_closed(app: InProcess, sender: Sender) -> None:
    port = sender(Limits(header_seconds=60, idle_seconds=0.5))
    with contextlib.closing(connect(port)) as sock:
        sock.sendall(request(target(app, SMALL)))
        assert read_response(sock)[::2] == (200, SMALL)
        assert closed_by_server(sock)


def test_a_client_that_stops_reading_a_body_is_dropped(app: InProcess, sender: Sender) -> None:
    port = sender(Limits(stall_seconds=0.5))
    with contextlib.closing(connect(port, rcvbuf=4096)) as sock:
        sock.sendall(request(target(app, BIG)))
        status, fields, body = read_head(sock)
        assert (status, fields["content-length"]) == (200, str(len(BIG)))
        time.sleep(3)  # takes nothing meanwhile
        with contextlib.suppress(ConnectionResetError):
            while len(body) < len(BIG) and (chunk := sock.recv(1 << 20)):
                body += chunk
        assert len(body) < len(BIG)  # the server gave up on it


def stalled_download(app: InProcess, port: int, source: str = "127.0.0.1") -> socket.socket:
    """A connection in the middle of BIG's body that reads no more."""
    sock = connect(port, source, rcvbuf=4096)
    sock.sendall(request(target(app, BIG)))
    assert read_head(sock)[0] == 200
    return sock


def test_past_the_cap_waiting_connections_make_room_and_busy_ones_refuse(
    app: InProcess, sender: Sender
) -> None:
    port = sender(Limits(per_client=2))
    first, second = connect(port), connect(port)
    try:
        with contextlib.closing(connect(port)) as third:  # a third connection from the address
            third.sendall(request(target(app, SMALL)))
            assert read_response(third)[::2] == (200, SMALL)
        assert closed_by_server(first)  # the one waiting longest made room
        second.sendall(request(target(app, SMALL)))
        assert read_response(second)[::2] == (200, SMALL)
    finally:
        first.close()
        second.close()

    busy = [stalled_download(app, port), stalled_download(app, port)]
    try:
        with contextlib.closing(connect(port)) as refused:
            refused.sendall(request(target(app, SMALL)))
            status, fields, body = read_response(refused)
            assert (status, fields["retry-after"], fields["connection"]) == (429, "1", "close")
            assert fields["content-type"] == "application/json"
            assert json.loads(body)["errors"][0]["code"] == "TOOMANYREQUESTS"
            assert closed_by_server(refused)
        with contextlib.closing(connect(port, source="127.0.0.2")) as other:  # another address
            other.sendall(request(target(app, SMALL)))
            assert read_response(other)[::2] == (200, SMALL)
    finally:
        for sock in busy:
            sock.close()


def test_when_every_slot_is_sending_a_new_connection_gets_503(
    app: InProcess, sender: Sender
) -> None:
    port = sender(Limits(connections=2))
    busy = [stalled_download(app, port, "127.0.0.2"), stalled_download(app, port, "127.0.0.3")]
    try:
        with contextlib.closing(connect(port)) as refused:
            status, fields, body = read_response(refused)
            assert (status, fields["retry-after"]) == (503, "1")
            assert json.loads(body)["errors"][0]["code"] == "UNAVAILABLE"
    finally:
        for sock in busy:
            sock.close()


def test_connection_close_http_1_0_and_bodies(app: InProcess, sender: Sender) -> None:
    """The connection stays open only where HTTP says it does; a GET with a body is answered
    and closed, as its body would otherwise be read as the next request."""
    port = sender(Limits())
    link = target(app, SMALL)
    for sent, keep_alive in (
        (request(link, "Connection: close"), False),
        (request(link).replace(b"HTTP/1.1", b"HTTP/1.0"), False),
        (request(link, "Connection: keep-alive").replace(b"HTTP/1.1", b"HTTP/1.0"), True),
        (request(link, "Content-Length: 5") + b"GET /", False),
        (request(link, "Transfer-Encoding: chunked") + b"0\r\n\r\n", False),
    ):
        with contextlib.closing(connect(port)) as sock:
            sock.sendall(sent)
            status, fields, body = read_response(sock)
            assert (status, body) == (200, SMALL), sent
            assert fields["connection"] == ("keep-alive" if keep_alive else "close"), sent
            if keep_alive:
                sock.sendall(request(link, method="HEAD"))
                status, fields, body = read_response(sock, head_only=True)
                assert (status, fields["content-length"], body) == (200, str(len(SMALL)), b"")
            else:
                assert closed_by_server(sock)
