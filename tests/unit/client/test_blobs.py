"""Blob downloads verify as they stream; broken connections resume with Range, and a reset
before any answer is retried."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from dockyard.client.hosts import Client
from dockyard.client.registry import RegistryClient
from dockyard.client.retry import RetryPolicy
from dockyard.client.settings import ClientConfig, RegistrySettings, TLSMode
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.errors import DigestInvalid, SizeInvalid
from dockyard.oci.reference import Reference

BLOB = bytes(range(256)) * 1024  # 256 KiB
DESC = Descriptor("application/octet-stream", Digest.of(BLOB), len(BLOB))
REF = Reference.parse("registry.test/team/app:v1")


def _blob_app(body: bytes, *, length: int | None = -1) -> web.Application:
    """Serves `body` in 16 KiB writes with `Content-Length: length` (default: the body's
    length; None: chunked, no length)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        if length is not None:
            response.content_length = len(body) if length == -1 else length
        await response.prepare(request)
        for offset in range(0, len(body), 16 * 1024):
            await response.write(body[offset : offset + 16 * 1024])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/v2/{path:.*}", handle)
    return app


async def _collect(registry: RegistryClient, received: list[bytes]) -> None:
    async for chunk in registry.blob_get(_ref(registry), DESC):
        received.append(chunk)


def _ref(registry: RegistryClient) -> Reference:
    return REF.with_registry(next(iter(registry.client.config.registries)))


async def test_intact_blob_streams_through(serve: Callable[..., Any]) -> None:
    registry = await serve(_blob_app(BLOB))
    received: list[bytes] = []
    await _collect(registry, received)
    assert b"".join(received) == BLOB
    assert len(received) > 1  # streamed, not read whole


async def test_a_flipped_byte_raises_before_the_blob_is_complete(
    serve: Callable[..., Any],
) -> None:
    corrupted = bytearray(BLOB)
    corrupted[1000] ^= 0x01
    registry = await serve(_blob_app(bytes(corrupted)))
    received: list[bytes] = []
    with pytest.raises(DigestInvalid, match="expected sha256:"):
        await _collect(registry, received)
    assert 0 < sum(map(len, received)) < len(BLOB)  # the completing chunk was never handed over


async def test_more_bytes_than_the_descriptor_says_are_refused(serve: Callable[..., Any]) -> None:
    registry = await serve(_blob_app(BLOB + b"x", length=None))
    with pytest.raises((SizeInvalid, DigestInvalid)):
        await _collect(registry, [])


async def test_a_wrong_content_length_is_refused_before_any_byte(
    serve: Callable[..., Any],
) -> None:
    registry = await serve(_blob_app(BLOB[:-1]))
    received: list[bytes] = []
    with pytest.raises(SizeInvalid, match=f"sends {len(BLOB) - 1} bytes"):
        await _collect(registry, received)
    assert received == []


async def test_a_blob_ending_early_is_refused(serve: Callable[..., Any]) -> None:
    registry = await serve(_blob_app(BLOB[:-10], length=None))
    with pytest.raises(SizeInvalid, match="ended after"):
        await _collect(registry, [])


async def test_empty_blob_is_verified(serve: Callable[..., Any]) -> None:
    registry = await serve(_blob_app(b""))
    empty = Descriptor("application/octet-stream", Digest.of(b""), 0)
    assert [c async for c in registry.blob_get(_ref(registry), empty)] == []
    wrong = Descriptor("application/octet-stream", Digest.of(b"x"), 0)
    with pytest.raises(DigestInvalid):
        _ = [c async for c in registry.blob_get(_ref(registry), wrong)]


class ResettingServer:
    """A real server on 127.0.0.1 that breaks its first answers, then behaves."""

    def __init__(self, *, resets_before_answer: int = 0, cut_after: int | None = None) -> None:
        self.resets_before_answer = resets_before_answer
        self.cut_after = cut_after
        self.ranges: list[str | None] = []
        self.app = web.Application()
        self.app.router.add_get("/v2/{path:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.ranges.append(request.headers.get("Range"))
        if self.resets_before_answer:
            self.resets_before_answer -= 1
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        start = 0
        response = web.StreamResponse(status=200)
        if request.headers.get("Range"):
            start = int(request.headers["Range"].removeprefix("bytes=").rstrip("-"))
            response.set_status(206)
            response.headers["Content-Range"] = f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}"
        response.content_length = len(BLOB) - start
        await response.prepare(request)
        if self.cut_after is not None:
            await response.write(BLOB[start : self.cut_after])
            self.cut_after = None
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write(BLOB[start:])
        await response.write_eof()
        return response


@pytest_asyncio.fixture
async def serve(fake_time: Any) -> AsyncIterator[Callable[..., Any]]:
    servers: list[TestServer] = []
    clients: list[Client] = []

    async def start(app: web.Application) -> RegistryClient:
        test_server = TestServer(app, host="127.0.0.1")
        await test_server.start_server()
        servers.append(test_server)
        host = f"127.0.0.1:{test_server.port}"
        config = ClientConfig()
        config.set(RegistrySettings(name=host, tls=TLSMode.DISABLED))
        client = Client(
            config,
            retry=RetryPolicy(attempts=4, base=0.01, rand=lambda: 1.0),
            clock=fake_time.clock,
            sleep=fake_time.sleep,
        )
        clients.append(client)
        return RegistryClient(client)

    yield start
    for client in clients:
        await client.close()
    for test_server in servers:
        await test_server.close()


async def test_a_reset_before_the_answer_is_retried(serve: Callable[..., Any]) -> None:
    server = ResettingServer(resets_before_answer=2)
    registry = await serve(server.app)
    data = b"".join([c async for c in registry.blob_get(_ref(registry), DESC)])
    assert hashlib.sha256(data).hexdigest() == DESC.digest.encoded
    assert server.ranges == [None, None, None]


async def test_a_cut_body_resumes_from_where_it_stopped(serve: Callable[..., Any]) -> None:
    server = ResettingServer(cut_after=100_000)
    registry = await serve(server.app)
    data = b"".join([c async for c in registry.blob_get(_ref(registry), DESC)])
    assert data == BLOB
    assert server.ranges[0] is None
    resumed = server.ranges[1]
    assert resumed is not None
    assert resumed.startswith("bytes=")
    assert int(resumed.removeprefix("bytes=").rstrip("-")) > 0
