"""end-4a/4b (POST, monolithic or session), end-5 (PATCH), end-6 (PUT), end-11 (mount),
end-13 (GET status), and DELETE to cancel an upload."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dockyard.api.bodies import INT64_MAX, body_stream, content_length, natural, shown
from dockyard.api.distribution.common import authorize, may, registry
from dockyard.api.errors import API_VERSION_HEADER
from dockyard.auth.policy import Action
from dockyard.metadata.repositories import RepositoryRow
from dockyard.oci.digest import Digest
from dockyard.oci.errors import BlobUploadInvalid, BlobUploadUnknown, DigestInvalid, RangeInvalid
from dockyard.oci.names import validate_name
from dockyard.registry.uploads import range_header


def _session(name: str, upload_id: str, size: int, status: int) -> Response:
    return Response(
        b"",
        status,
        {
            **API_VERSION_HEADER,
            "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
            "Range": range_header(size),
            "Docker-Upload-UUID": upload_id,
            "Content-Length": "0",
        },
    )


def _created(name: str, digest: Digest) -> Response:
    return Response(
        b"",
        201,
        {
            **API_VERSION_HEADER,
            "Location": f"/v2/{name}/blobs/{digest}",
            "Docker-Content-Digest": str(digest),
            "Content-Length": "0",
        },
    )


async def start_upload(request: Request, name: str) -> Response:
    subject, _ = await authorize(request, name, Action.PUSH)
    reg = registry(request)
    repository = await reg.repositories.ensure(subject, name)
    params = request.query_params
    mount = params.get("mount")
    if mount is not None:
        digest = Digest.parse(mount)
        source = params.get("from")
        if (
            source
            and validate_name(source)
            and await may(request, subject, source, Action.PULL)
            and await reg.blobs.mount(await reg.repositories.get(source), repository, digest)
        ):
            return _created(name, digest)
        # not mountable by this caller: fall back to an ordinary upload session
    digest_text = params.get("digest")
    upload_id = await reg.uploads.start(repository, subject.name)
    if digest_text is None or mount is not None:
        return _session(name, upload_id, 0, 202)
    digest = Digest.parse(digest_text)
    await reg.uploads.complete(
        repository, upload_id, digest, body_stream(request), content_length(request)
    )
    return _created(name, digest)


async def upload_status(request: Request, name: str, upload_id: str) -> Response:
    _, repository = await authorize(request, name, Action.PUSH)
    repository = await _existing(request, name, repository)
    size = await registry(request).uploads.size(repository, upload_id)
    return _session(name, upload_id, size, 204)


async def patch_upload(request: Request, name: str, upload_id: str) -> Response:
    _, repository = await authorize(request, name, Action.PUSH)
    repository = await _existing(request, name, repository)
    length = content_length(request)
    start = _content_range(request.headers.get("content-range"), length)
    size = await registry(request).uploads.append(
        repository, upload_id, body_stream(request), start, length
    )
    return _session(name, upload_id, size, 202)


async def finish_upload(request: Request, name: str, upload_id: str) -> Response:
    _, repository = await authorize(request, name, Action.PUSH)
    repository = await _existing(request, name, repository)
    digest_text = request.query_params.get("digest")
    if not digest_text:
        raise DigestInvalid("the digest query parameter is required to complete an upload")
    digest = Digest.parse(digest_text)
    length = content_length(request)
    reg = registry(request)
    if request.headers.get("content-range"):
        start = _content_range(request.headers["content-range"], length)
        size = await reg.uploads.size(repository, upload_id)
        if start != size:
            raise RangeInvalid(
                f"chunk starts at byte {start} but the upload holds {size} bytes",
                headers={"Range": range_header(size)},
            )
    has_body = length is None or length > 0
    body = body_stream(request) if has_body else None
    await reg.uploads.complete(repository, upload_id, digest, body, length if has_body else None)
    return _created(name, digest)


async def cancel_upload(request: Request, name: str, upload_id: str) -> Response:
    _, repository = await authorize(request, name, Action.PUSH)
    repository = await _existing(request, name, repository)
    await registry(request).uploads.cancel(repository, upload_id)
    return Response(b"", 204, {**API_VERSION_HEADER, "Content-Length": "0"})


async def _existing(request: Request, name: str, repository: RepositoryRow | None) -> RepositoryRow:
    if repository is None:
        raise BlobUploadUnknown(f"no upload is in progress in repository {name!r}")
    return repository


def _content_range(header: str | None, length: int | None) -> int | None:
    """The start of a chunk's `Content-Range: <start>-<end>`; its size must match the body."""
    if not header:
        return None
    text = header.strip().removeprefix("bytes ").removeprefix("bytes=")
    first, sep, last = text.partition("-")
    start, end = natural(first), natural(last)
    if not sep or start is None or end is None or end < start:
        raise RangeInvalid(
            f"invalid Content-Range {shown(header)}: expected <start>-<end>, "
            "two non-negative integers with start <= end"
        )
    if end > INT64_MAX:
        raise RangeInvalid(
            f"Content-Range {shown(header)} ends past byte {INT64_MAX}, the largest blob size"
        )
    if length is not None and length != end - start + 1:
        raise BlobUploadInvalid(
            f"Content-Range {shown(header)} covers {end - start + 1} bytes "
            f"but Content-Length is {length}"
        )
    return start
