"""end-8 (tags list), end-12 (referrers) and the catalog, with `n`/`last` pagination."""

from __future__ import annotations

from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response

from dockyard.api.authn import caller
from dockyard.api.distribution.common import authorize, cursor, page_size, registry
from dockyard.api.errors import API_VERSION_HEADER
from dockyard.auth.policy import Action
from dockyard.oci import mediatypes as mt
from dockyard.oci.digest import Digest
from dockyard.oci.errors import NameUnknown, Unauthorized
from dockyard.oci.referrers import referrers_index


def _json(
    body: object, headers: dict[str, str] | None = None, media_type: str = "application/json"
) -> Response:
    return Response(
        orjson.dumps(body), 200, {**API_VERSION_HEADER, **(headers or {})}, media_type=media_type
    )


def _next_link(path: str, n: int, last: str) -> dict[str, str]:
    return {"Link": f'<{path}?{urlencode({"n": n, "last": last})}>; rel="next"'}


async def list_tags(request: Request, name: str) -> Response:
    _, repository = await authorize(request, name, Action.PULL)
    if repository is None:
        raise NameUnknown(f"repository {name!r} is not known to this registry", {"name": name})
    n = page_size(request)
    names, more = await registry(request).manifests.tags(repository, n, cursor(request))
    headers = _next_link(request.url.path, n, names[-1]) if more and n and names else {}
    return _json({"name": name, "tags": names}, headers)


async def catalog(request: Request) -> Response:
    request.state.scope = "registry:catalog:*"
    subject, claims = await caller(request)
    if claims is not None and not claims.grants("registry", "catalog", "*"):
        raise Unauthorized("the bearer token does not grant registry:catalog:*")
    n = page_size(request)
    page = await registry(request).repositories.catalog(subject, n, cursor(request))
    headers = (
        _next_link(request.url.path, len(page.items), page.next_last) if page.next_last else {}
    )
    return _json({"repositories": page.items}, headers)


async def list_referrers(request: Request, name: str, digest_text: str) -> Response:
    digest = Digest.parse(digest_text)
    _, repository = await authorize(request, name, Action.PULL)
    artifact_type = request.query_params.get("artifactType")
    found = await registry(request).referrers.list(repository, digest, artifact_type)
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type is not None else {}
    return Response(
        referrers_index(found), 200, {**API_VERSION_HEADER, **headers}, media_type=mt.OCI_INDEX
    )
