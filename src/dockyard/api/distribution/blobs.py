"""end-2 (GET/HEAD a blob, with Range) and end-10 (DELETE a blob)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse

from dockyard.api.distribution.blobsend import BlobLinks
from dockyard.api.distribution.common import authorize, byte_range, registry
from dockyard.api.errors import API_VERSION_HEADER
from dockyard.auth.policy import Action
from dockyard.oci.digest import Digest


async def get_blob(request: Request, name: str, digest_text: str) -> Response:
    digest = Digest.parse(digest_text)
    _, repository = await authorize(request, name, Action.PULL)
    reg, info = registry(request), None
    if reg.pull_through is not None:  # None unless `name` is a proxied repository
        fetch = request.method != "HEAD"  # a HEAD asks upstream for the size only
        info = await reg.pull_through.blob(name, repository, digest, fetch)
    if info is None:
        info = await reg.blobs.stat(repository, digest)
    headers = {
        **API_VERSION_HEADER,
        "Docker-Content-Digest": str(digest),
        "ETag": f'"{digest}"',
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=31536000",
    }
    if request.method == "HEAD":
        headers["Content-Length"] = str(info.size)
        return Response(b"", 200, headers, media_type="application/octet-stream")
    links: BlobLinks | None = request.app.state.dockyard.blob_links
    if links is not None and info.path is not None and info.size >= links.min_size:
        # to the sendfile listener (blobsend.py), which answers a Range the same way
        redirect = {**API_VERSION_HEADER, "Docker-Content-Digest": str(digest)}
        redirect |= {"Location": links.url(digest), "Content-Length": "0"}
        return Response(b"", 307, redirect)
    start, end = byte_range(request.headers.get("range"), info.size)  # refuses bad ranges
    if info.path is not None and not request.headers.get("range"):
        # sent by the server from the file (ASGI pathsend), never through Python; not for a
        # Range, which FileResponse would parse again by its own rules (a 5,000-digit number
        # there is a plain-text 400, not the spec's 416)
        return FileResponse(info.path, headers=headers, media_type="application/octet-stream")
    stream = registry(request).store.blobs.read(digest, start, end - start + 1)
    status = 200
    if request.headers.get("range"):
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
    headers["Content-Length"] = str(end - start + 1)
    return StreamingResponse(stream, status, headers, media_type="application/octet-stream")


async def delete_blob(request: Request, name: str, digest_text: str) -> Response:
    digest = Digest.parse(digest_text)
    _, repository = await authorize(request, name, Action.DELETE)
    reg = registry(request)
    info = await reg.blobs.stat(repository, digest)
    assert repository is not None
    await reg.blobs.delete(repository, info.digest)
    return Response(b"", 202, {**API_VERSION_HEADER, "Content-Length": "0"})
