"""Blob uploads against a fake registry in process: monolithic, chunked with Content-Range,
resuming after a failed PATCH, and a new session after a failed PUT."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dockyard.client.registry import RegistryClient
from dockyard.client.uploads import _held
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.errors import BlobUploadInvalid, DigestInvalid, OciError, SizeInvalid
from dockyard.oci.reference import Reference

REF = Reference.parse("registry.test/team/app:v1")
DATA = bytes(range(256)) * 40  # 10240 bytes
DESC = Descriptor("application/octet-stream", Digest.of(DATA), len(DATA))


class UploadRegistry:
    """Upload sessions kept in memory; `faults` lists (method, status, keep) to answer with
    instead of the real outcome, after keeping `keep` bytes of the request body."""

    def __init__(self, *, chunk_min: int | None = None) -> None:
        self.sessions: dict[str, bytearray] = {}
        self.blobs: dict[str, bytes] = {}
        self.faults: list[tuple[str, int, int]] = []
        self.fault_headers: dict[str, str] = {}
        self.log: list[tuple[str, str | None]] = []
        self.chunk_min = chunk_min
        self.app = Starlette(
            routes=[
                Route("/v2/{name:path}/blobs/uploads/", self.post, methods=["POST"]),
                Route(
                    "/v2/{name:path}/blobs/uploads/{id}",
                    self.session,
                    methods=["PATCH", "PUT", "GET", "DELETE"],
                ),
            ]
        )

    async def post(self, request: Request) -> Response:
        upload = str(uuid.uuid4())
        self.sessions[upload] = bytearray()
        self.log.append(("POST", None))
        headers = {"Location": f"/v2/team/app/blobs/uploads/{upload}?_state=s{upload[:4]}"}
        if self.chunk_min:
            headers["OCI-Chunk-Min-Length"] = str(self.chunk_min)
        return Response(b"", 202, headers)

    async def session(self, request: Request) -> Response:
        upload = request.path_params["id"]
        assert request.query_params["_state"] == f"s{upload[:4]}"  # the Location was kept
        self.log.append((request.method, request.headers.get("content-range")))
        stored = self.sessions.get(upload)
        if stored is None:
            return Response(b'{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN"}]}', 404)
        if request.method == "DELETE":
            del self.sessions[upload]
            return Response(b"", 204)
        if request.method == "GET":
            return Response(b"", 204, self._range(upload, stored))
        body = await request.body()
        if self.faults and self.faults[0][0] == request.method:
            _, status, keep = self.faults.pop(0)
            stored += body[:keep]
            return Response(b"", status, self.fault_headers)
        if request.method == "PATCH":
            first = int(request.headers["content-range"].split("-")[0])
            if first != len(stored):
                return Response(b"", 416, self._range(upload, stored))
            stored += body
            return Response(b"", 202, self._range(upload, stored))
        stored += body
        digest = request.query_params["digest"]
        if digest != "sha256:" + hashlib.sha256(stored).hexdigest():
            return Response(b'{"errors":[{"code":"DIGEST_INVALID","message":"no"}]}', 400)
        self.blobs[digest] = bytes(stored)
        del self.sessions[upload]
        return Response(b"", 201, {"Docker-Content-Digest": digest})

    def _range(self, upload: str, stored: bytearray) -> dict[str, str]:
        return {
            "Range": f"0-{max(len(stored) - 1, 0)}",
            "Location": f"/v2/team/app/blobs/uploads/{upload}?_state=s{upload[:4]}",
        }


async def test_monolithic_upload(registry_for: Callable[..., RegistryClient]) -> None:
    fake = UploadRegistry()
    await registry_for(fake.app).blob_put(REF, DESC, DATA)
    assert fake.blobs == {str(DESC.digest): DATA}
    assert [method for method, _ in fake.log] == ["POST", "PUT"]


async def test_chunked_upload_sends_content_ranges(
    registry_for: Callable[..., RegistryClient],
) -> None:
    fake = UploadRegistry()
    await registry_for(fake.app).blob_put(REF, DESC, DATA, chunk_size=4096)
    assert fake.blobs == {str(DESC.digest): DATA}
    assert fake.log == [
        ("POST", None),
        ("PATCH", "0-4095"),
        ("PATCH", "4096-8191"),
        ("PATCH", "8192-10239"),
        ("PUT", None),
    ]


async def test_chunked_upload_takes_a_stream(registry_for: Callable[..., RegistryClient]) -> None:
    async def stream() -> AsyncIterator[bytes]:
        for offset in range(0, len(DATA), 1000):
            yield DATA[offset : offset + 1000]

    fake = UploadRegistry()
    await registry_for(fake.app).blob_put(REF, DESC, stream(), chunk_size=3000)
    assert fake.blobs == {str(DESC.digest): DATA}


async def test_the_registry_minimum_chunk_size_wins(
    registry_for: Callable[..., RegistryClient],
) -> None:
    fake = UploadRegistry(chunk_min=6000)
    await registry_for(fake.app).blob_put(REF, DESC, DATA, chunk_size=1000)
    assert [r for m, r in fake.log if m == "PATCH"] == ["0-5999", "6000-10239"]


async def test_failed_patch_resumes_from_the_registry_range(
    registry_for: Callable[..., RegistryClient],
) -> None:
    fake = UploadRegistry()
    fake.faults.append(("PATCH", 500, 1000))  # the first PATCH keeps 1000 bytes, then fails
    registry = registry_for(fake.app)
    await registry.blob_put(REF, DESC, DATA, chunk_size=4096)
    assert fake.blobs == {str(DESC.digest): DATA}
    assert fake.log[:4] == [
        ("POST", None),
        ("PATCH", "0-4095"),
        ("GET", None),
        ("PATCH", "1000-4095"),
    ]


async def test_failed_put_starts_a_new_session(registry_for: Callable[..., RegistryClient]) -> None:
    fake = UploadRegistry()
    fake.faults.append(("PUT", 503, 5000))  # half the bytes land in the session, then 503
    opened = 0

    def body() -> AsyncIterator[bytes]:
        nonlocal opened
        opened += 1

        async def stream() -> AsyncIterator[bytes]:
            yield DATA

        return stream()

    await registry_for(fake.app).blob_put(REF, DESC, body)
    assert fake.blobs == {str(DESC.digest): DATA}
    assert opened == 2
    assert [method for method, _ in fake.log] == ["POST", "PUT", "DELETE", "POST", "PUT"]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_a_failed_upload_waits_what_retry_after_asks(
    registry_for: Callable[..., RegistryClient], fake_time: Any, method: str
) -> None:
    fake = UploadRegistry()
    fake.faults.append((method, 429, 0))
    fake.fault_headers["Retry-After"] = "7"
    chunk_size = 4096 if method == "PATCH" else 0
    await registry_for(fake.app).blob_put(REF, DESC, DATA, chunk_size=chunk_size)
    assert fake.blobs == {str(DESC.digest): DATA}
    assert fake_time.sleeps == [7.0]  # not the jittered 0.5 s


async def test_a_bare_stream_is_not_sent_twice(registry_for: Callable[..., RegistryClient]) -> None:
    async def stream() -> AsyncIterator[bytes]:
        yield DATA

    fake = UploadRegistry()
    fake.faults.append(("PUT", 503, 0))
    with pytest.raises(OciError) as raised:
        await registry_for(fake.app).blob_put(REF, DESC, stream())
    assert raised.value.status == 503


async def test_wrong_bytes_are_refused_by_the_registry(
    registry_for: Callable[..., RegistryClient],
) -> None:
    fake = UploadRegistry()
    with pytest.raises(DigestInvalid):
        await registry_for(fake.app).blob_put(REF, DESC, DATA[:-1] + b"x")
    assert fake.blobs == {}


def test_range_header_reading() -> None:
    assert _held("0-4095", 10) == 4096
    assert _held("bytes=0-99", 10) == 100
    assert _held("0-0", 0) == 0  # distribution's answer for an empty session
    assert _held("0-0", 1) == 1
    assert _held(None, 7) == 7
    with pytest.raises(BlobUploadInvalid):
        _held("5-9", 0)


@pytest.mark.parametrize("data", [DATA[:-1], DATA + b"x"])
async def test_a_stream_of_the_wrong_size_is_refused(
    registry_for: Callable[..., RegistryClient], data: bytes
) -> None:
    async def stream() -> AsyncIterator[bytes]:
        yield data[:5000]
        yield data[5000:]

    fake = UploadRegistry()
    registry = registry_for(fake.app)
    with pytest.raises(SizeInvalid):
        await registry.blob_put(REF, DESC, stream())
    with pytest.raises(SizeInvalid):
        await registry.blob_put(REF, DESC, data)
    assert fake.blobs == {}
