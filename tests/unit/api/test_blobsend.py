"""The sendfile listener: signed links from /v2, what it sends and what it refuses."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
import pytest_asyncio

from dockyard.api.distribution.blobsend import LINK_SECONDS, BlobLinks
from dockyard.oci.digest import Digest
from dockyard.oci.errors import Denied, DigestInvalid
from support.inprocess import InProcess, running_app
from support.peers import free_port

BIG = bytes(range(256)) * 8  # 2,048 bytes: redirected (the minimum here is 1,000)
SMALL = b"small blob"
REPO = "team/app"
DIGEST = "sha256:" + hashlib.sha256(BIG).hexdigest()


@pytest_asyncio.fixture
async def app(tmp_path: Path) -> AsyncIterator[InProcess]:
    listen = f"127.0.0.1:{free_port()}"
    async with running_app(
        tmp_path / "data", blob_listen=listen, blob_redirect_min_bytes=1000
    ) as running:
        yield running


@pytest_asyncio.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


async def _link(app: InProcess) -> str:
    """Push BIG and return the link GET /v2 redirects to."""
    assert await app.push_blob(REPO, BIG) == DIGEST
    async with app.client.get(
        f"/v2/{REPO}/blobs/{DIGEST}", headers=app.admin, allow_redirects=False
    ) as resp:
        assert resp.status == 307
        assert resp.headers["Docker-Content-Digest"] == DIGEST
        return resp.headers["Location"]


def test_links_are_signed_for_one_digest_and_expire() -> None:
    now = [1_000_000.0]
    links = BlobLinks(b"k" * 32, "http://127.0.0.1:1/", 0, clock=lambda: now[0])
    digest = Digest.parse(DIGEST)
    url = urlsplit(links.url(digest))
    assert url.path == f"/blobs/{DIGEST}"
    query = dict(part.split("=") for part in url.query.split("&"))
    assert query["expires"] == str(1_000_000 + LINK_SECONDS)
    assert links.check(DIGEST, query["expires"], query["signature"]) == digest
    assert links.check(DIGEST, query["expires"], query["signature"].upper()) == digest
    other = "sha256:" + "0" * 64
    for digest_text, expires, signature, message in (
        (other, query["expires"], query["signature"], "signature does not match"),
        (DIGEST, str(int(query["expires"]) + 1), query["signature"], "signature does not match"),
        (DIGEST, "-1", query["signature"], "malformed"),
        (DIGEST, query["expires"], query["signature"][:-1], "malformed"),
        (DIGEST, "9" * 400, query["signature"], "signature does not match"),
    ):
        with pytest.raises(Denied, match=message):
            links.check(digest_text, expires, signature)
    with pytest.raises(DigestInvalid):
        links.check("sha256:nothex", query["expires"], query["signature"])
    now[0] += LINK_SECONDS + 5
    with pytest.raises(Denied, match="expired 5 s ago"):
        links.check(DIGEST, query["expires"], query["signature"])
    # another key signs differently
    stranger = BlobLinks(b"x" * 32, "http://127.0.0.1:1", 0, clock=lambda: now[0])
    with pytest.raises(Denied, match="signature does not match"):
        stranger.check(DIGEST, query["expires"], query["signature"])


async def test_a_big_blob_is_redirected_and_sent_whole_or_in_ranges(
    app: InProcess, http_session: aiohttp.ClientSession
) -> None:
    link = await _link(app)
    async with http_session.get(link) as resp:
        assert resp.status == 200
        assert await resp.read() == BIG
        assert resp.headers["Docker-Content-Digest"] == DIGEST
        assert resp.headers["Content-Length"] == str(len(BIG))
        assert resp.headers["Content-Type"] == "application/octet-stream"
    async with http_session.head(link) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(len(BIG))
        assert await resp.read() == b""
    for header, status, body, content_range in (
        ("bytes=10-19", 206, BIG[10:20], "bytes 10-19/2048"),
        ("bytes=-5", 206, BIG[-5:], "bytes 2043-2047/2048"),
        ("bytes=2000-", 206, BIG[2000:], "bytes 2000-2047/2048"),
    ):
        async with http_session.get(link, headers={"Range": header}) as resp:
            assert (resp.status, await resp.read()) == (status, body)
            assert resp.headers["Content-Range"] == content_range
    async with http_session.get(link, headers={"Range": ""}) as resp:
        assert (resp.status, await resp.read()) == (200, BIG)
    async with http_session.get(link, headers={"Range": "bytes=4000-"}) as resp:
        assert resp.status == 416
        assert resp.headers["Content-Range"] == "bytes */2048"
        assert (await resp.json())["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"


async def test_small_blobs_heads_and_strangers_are_not_redirected(app: InProcess) -> None:
    small = await app.push_blob(REPO, SMALL)
    await app.push_blob(REPO, BIG)
    async with app.client.get(
        f"/v2/{REPO}/blobs/{small}", headers=app.admin, allow_redirects=False
    ) as resp:
        assert (resp.status, await resp.read()) == (200, SMALL)
    async with app.client.head(f"/v2/{REPO}/blobs/{DIGEST}", headers=app.admin) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(len(BIG))
    # the access check comes first: no link for a caller who may not pull
    async with app.client.get(f"/v2/{REPO}/blobs/{DIGEST}", allow_redirects=False) as resp:
        assert resp.status == 401
        assert "Location" not in resp.headers


async def test_the_sender_refuses_what_is_not_a_valid_link(
    app: InProcess, http_session: aiohttp.ClientSession
) -> None:
    link = await _link(app)
    url = urlsplit(link)
    base = f"{url.scheme}://{url.netloc}"
    tampered = link[:-1] + ("0" if link[-1] != "0" else "1")
    unknown = app.state.blob_links
    assert unknown is not None
    never_stored = unknown.url(Digest.parse("sha256:" + hashlib.sha256(b"nope").hexdigest()))
    for target, status, code in (
        (tampered, 403, "DENIED"),
        (f"{base}{url.path}", 403, "DENIED"),
        (f"{link}&signature=00", 403, "DENIED"),
        (link + "&x=1" * 10, 403, "DENIED"),
        (f"{base}/v2/{REPO}/blobs/{DIGEST}?{url.query}", 404, "BLOB_UNKNOWN"),
        (never_stored, 404, "BLOB_UNKNOWN"),
        (f"{base}/blobs/sha256:abc?{url.query}", 400, "DIGEST_INVALID"),
    ):
        async with http_session.get(target) as resp:
            assert resp.status == status, target
            assert resp.headers["Content-Type"] == "application/json"
            assert (await resp.json())["errors"][0]["code"] == code
    async with http_session.post(link, data=b"x") as resp:
        assert resp.status == 501
    host, port = url.netloc.split(":")
    for garbage, status in (
        (b"NOT AN HTTP REQUEST\r\n\r\n", b"400"),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", b"414"),
        (b"GET " + url.path.encode() + b" HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n", b"431"),
    ):
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            raw.sendall(garbage)
            assert raw.recv(100).startswith(b"HTTP/1.1 " + status)


async def test_connections_are_kept_alive_and_survive_a_client_that_leaves(app: InProcess) -> None:
    link = urlsplit(await _link(app))
    host, port = link.netloc.split(":")
    target = f"{link.path}?{link.query}"

    def fetch_twice_then_leave_mid_body() -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        for _ in range(2):  # one connection, two requests
            connection.request("GET", target)
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, BIG)
        connection.request("GET", target)
        response = connection.getresponse()
        response.read(10)
        connection.close()  # gone before the body is all sent
        again = http.client.HTTPConnection(host, int(port), timeout=5)
        again.request("GET", target)
        assert again.getresponse().read() == BIG
        again.close()

    await asyncio.to_thread(fetch_twice_then_leave_mid_body)
