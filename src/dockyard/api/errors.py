"""The one place where exceptions become HTTP responses, in the spec's error envelope."""

from __future__ import annotations

import logging

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from dockyard.oci.errors import OciError, Unsupported

log = logging.getLogger("dockyard.api")
API_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}


def error_response(request: Request, exc: OciError) -> Response:
    """`{"errors":[{"code","message","detail"}]}` with the error's status and headers."""
    headers = dict(API_VERSION_HEADER)
    headers.update(exc.headers)
    if exc.status == 401:
        headers["WWW-Authenticate"] = challenge(request)
    body = b"" if request.method == "HEAD" else orjson.dumps({"errors": [exc.to_json()]})
    response = Response(body, exc.status, headers, media_type="application/json")
    if request.method == "HEAD":
        response.headers["Content-Length"] = "0"
    return response


def challenge(request: Request) -> str:
    """The Bearer challenge pointing clients at this server's token endpoint."""
    settings = request.app.state.dockyard.settings
    realm = settings.public_url or f"{request.url.scheme}://{request.headers.get('host', '')}"
    value = f'Bearer realm="{realm.rstrip("/")}/token",service="{settings.service}"'
    scope = getattr(request.state, "scope", None)
    if scope:
        value += f',scope="{scope}"'
    return value


async def handle_oci_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OciError)
    return error_response(request, exc)


async def handle_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return error_response(request, Unsupported(f"{request.method} is not supported here"))
    body = (
        b""
        if request.method == "HEAD"
        else orjson.dumps({"errors": [{"code": "UNKNOWN", "message": exc.detail}]})
    )
    return Response(body, exc.status_code, API_VERSION_HEADER, media_type="application/json")


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    err = OciError("internal server error; the server log has the details")
    return error_response(request, err)


EXCEPTION_HANDLERS = {
    OciError: handle_oci_error,
    HTTPException: handle_http_error,
    Exception: handle_unexpected,
}
