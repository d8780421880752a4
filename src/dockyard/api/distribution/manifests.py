"""end-3 (GET/HEAD a manifest), end-7 (PUT), end-9 (DELETE)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dockyard.api.bodies import small_body
from dockyard.api.distribution.common import authorize, registry
from dockyard.api.errors import API_VERSION_HEADER
from dockyard.auth.policy import Action
from dockyard.metadata.repositories import RepositoryRow
from dockyard.oci.errors import NameUnknown
from dockyard.oci.manifest import MAX_MANIFEST_SIZE


def _accepted(request: Request) -> frozenset[str] | None:
    """The media types an Accept header allows; None when it allows anything."""
    values = request.headers.getlist("accept")
    types = {part.split(";", 1)[0].strip().lower() for value in values for part in value.split(",")}
    types.discard("")
    if not types or "*/*" in types or "application/*" in types:
        return None
    return frozenset(types)


def _require(name: str, repository: RepositoryRow | None) -> RepositoryRow:
    if repository is None:
        raise NameUnknown(f"repository {name!r} is not known to this registry", {"name": name})
    return repository


async def get_manifest(request: Request, name: str, reference: str) -> Response:
    _, repository = await authorize(request, name, Action.PULL)
    reg, accept = registry(request), _accepted(request)
    found = None
    if reg.pull_through is not None:  # None unless `name` is a proxied repository
        found = await reg.pull_through.manifest(name, repository, reference, accept)
    if found is None:
        found = await reg.manifests.get(_require(name, repository), reference, accept)
    headers = {
        **API_VERSION_HEADER,
        "Docker-Content-Digest": found.digest,
        "ETag": f'"{found.digest}"',
        "Content-Length": str(len(found.content)),
    }
    body = b"" if request.method == "HEAD" else found.content
    return Response(body, 200, headers, media_type=found.media_type)


async def put_manifest(request: Request, name: str, reference: str) -> Response:
    """end-7: push by tag or digest; `?tag=a&tag=b` (end-7b) tags it too, and `OCI-Tag` says
    which tags the push applied."""
    subject, _ = await authorize(request, name, Action.PUSH)
    raw = await small_body(request, MAX_MANIFEST_SIZE, "manifest")
    content_type = request.headers.get("content-type")
    tag_parameters = request.query_params.getlist("tag")
    pushed = await registry(request).manifests.put(
        name,
        reference,
        raw,
        content_type,
        pusher=subject.name or subject.org,
        tags=tag_parameters,
    )
    digest = str(pushed.manifest.digest)
    headers = {
        **API_VERSION_HEADER,
        "Location": f"/v2/{name}/manifests/{digest}",
        "Docker-Content-Digest": digest,
        "Content-Length": "0",
    }
    if tag_parameters:
        headers["OCI-Tag"] = ", ".join(pushed.tags)
    if pushed.manifest.subject is not None:
        headers["OCI-Subject"] = str(pushed.manifest.subject.digest)
    return Response(b"", 201, headers)


async def delete_manifest(request: Request, name: str, reference: str) -> Response:
    _, repository = await authorize(request, name, Action.DELETE)
    await registry(request).manifests.delete(_require(name, repository), reference)
    return Response(b"", 202, {**API_VERSION_HEADER, "Content-Length": "0"})
