"""Dispatch of /v2 paths. Repository names contain slashes, so routes match from the right."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from dockyard.api.authn import caller
from dockyard.api.distribution import blobs, listing, manifests, uploads
from dockyard.api.errors import API_VERSION_HEADER
from dockyard.oci.errors import NameInvalid, Unauthorized, Unsupported
from dockyard.oci.names import validate_name

Handler = Callable[..., Awaitable[Response]]

_ROUTES: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
    (
        re.compile(r"(?P<name>.+)/blobs/uploads/(?P<upload_id>[^/]+)"),
        {
            "GET": uploads.upload_status,
            "PATCH": uploads.patch_upload,
            "PUT": uploads.finish_upload,
            "DELETE": uploads.cancel_upload,
        },
    ),
    (re.compile(r"(?P<name>.+)/blobs/uploads/?"), {"POST": uploads.start_upload}),
    (
        re.compile(r"(?P<name>.+)/blobs/(?P<digest_text>[^/]+)"),
        {"GET": blobs.get_blob, "HEAD": blobs.get_blob, "DELETE": blobs.delete_blob},
    ),
    (
        re.compile(r"(?P<name>.+)/manifests/(?P<reference>[^/]+)"),
        {
            "GET": manifests.get_manifest,
            "HEAD": manifests.get_manifest,
            "PUT": manifests.put_manifest,
            "DELETE": manifests.delete_manifest,
        },
    ),
    (re.compile(r"(?P<name>.+)/tags/list"), {"GET": listing.list_tags}),
    (re.compile(r"(?P<name>.+)/referrers/(?P<digest_text>[^/]+)"), {"GET": listing.list_referrers}),
]


async def base(request: Request) -> Response:
    """end-1: the API is here; it answers 200 to a caller whose credentials are good."""
    subject, _ = await caller(request)
    if subject.is_anonymous:
        raise Unauthorized("authentication required")
    return Response(b"{}", 200, API_VERSION_HEADER, media_type="application/json")


async def dispatch(request: Request) -> Response:
    path = request.path_params.get("path", "")
    if path in ("", "/"):
        if request.method not in ("GET", "HEAD"):
            raise Unsupported(f"{request.method} /v2/ is not supported")
        return await base(request)
    if path == "_catalog":
        if request.method not in ("GET", "HEAD"):
            raise Unsupported(f"{request.method} /v2/_catalog is not supported; use GET")
        return await listing.catalog(request)
    for pattern, methods in _ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        params = match.groupdict()
        _validate(params["name"])
        handler = methods.get(request.method)
        if handler is None:
            raise Unsupported(
                f"{request.method} is not supported on this endpoint; use {', '.join(methods)}"
            )
        return await handler(request, **params)
    raise NameInvalid(f"no /v2 endpoint matches {request.url.path!r}")


def _validate(name: str) -> None:
    if ".." in name.split("/"):
        raise NameInvalid(f"repository name {name!r} must not contain '..'")
    validate_name(name)
