"""The one place where exceptions become HTTP responses, in the spec's error envelope."""

from __future__ import annotations

import logging

import orjson
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from dockyard.api.hosts import origin
from dockyard.auth.accounts import AccountConflict, AccountError, AccountNotFound
from dockyard.hub.errors import HubError
from dockyard.oci.errors import OciError, Unsupported

log = logging.getLogger("dockyard.api")
API_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}


def envelope(exc: OciError, *more: OciError) -> tuple[dict[str, str], bytes]:
    """The headers and JSON body every error is answered with, on any listener.

    `{"errors":[{"code","message","detail"}]}` of `exc` and `more`, with the API version header
    and `exc`'s own headers; the status is `exc.status`, and a HEAD answer leaves out the body.
    """
    headers = {**API_VERSION_HEADER, **exc.headers, "Content-Type": "application/json"}
    return headers, orjson.dumps({"errors": [err.to_json() for err in (exc, *more)]})


def error_response(request: Request, exc: OciError, *more: OciError) -> Response:
    """`{"errors":[{"code","message","detail"}]}` with the (first) error's status and headers."""
    headers, body = envelope(exc, *more)
    if exc.status == 401:
        headers["WWW-Authenticate"] = challenge(request)
    if request.method == "HEAD":
        body = b""
    response = Response(body, exc.status, headers, media_type="application/json")
    if request.method == "HEAD":
        response.headers["Content-Length"] = "0"
    return response


def challenge(request: Request) -> str:
    """The Bearer challenge pointing clients at this server's token endpoint."""
    settings = request.app.state.dockyard.settings
    realm = settings.public_url or origin(request)
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


# The management API (/api/v1) answers in the same envelope, with codes of its own where the
# distribution spec has no word.


class NotFound(OciError):
    code, status, default_message = "NOT_FOUND", 404, "not found"


class Conflict(OciError):
    code, status, default_message = "CONFLICT", 409, "conflicts with the current state"


class InvalidRequest(OciError):
    code, status, default_message = "INVALID_REQUEST", 422, "invalid request"


class BadRequest(OciError):
    code, status, default_message = "INVALID_REQUEST", 400, "the request cannot be used"


class UpstreamFailed(OciError):
    code, status, default_message = "UPSTREAM_FAILED", 502, "an upstream registry failed"


_HUB_ERRORS: dict[str, type[OciError]] = {
    "NOT_FOUND": NotFound,
    "CONFLICT": Conflict,
    "UPSTREAM_FAILED": UpstreamFailed,
}


async def handle_validation_error(request: Request, exc: Exception) -> Response:
    """422 INVALID_REQUEST, one entry per problem, each naming its field (`body.name`)."""
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error.get("loc", ())) or "request"
        reason = str(error.get("msg", "invalid"))
        problems.append(
            InvalidRequest(f"{field}: {reason}", {"field": field, "reason": error.get("type")})
        )
    if not problems:
        problems.append(InvalidRequest())
    return error_response(request, *problems)


async def handle_account_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AccountError)
    if isinstance(exc, AccountNotFound):
        return error_response(request, NotFound(str(exc)))
    if isinstance(exc, AccountConflict):
        return error_response(request, Conflict(str(exc)))
    return error_response(request, InvalidRequest(str(exc)))


async def handle_hub_error(request: Request, exc: Exception) -> Response:
    """The hub's refusals, by kind: 400 invalid, 404, 409, 502 when upstream failed."""
    assert isinstance(exc, HubError)
    kind = _HUB_ERRORS.get(exc.code, BadRequest)
    return error_response(request, kind(exc.message, exc.detail))


async def handle_api_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(request, NotFound(f"no such path: {request.url.path}"))
    if exc.status_code == 400:  # FastAPI could not read the body (e.g. not UTF-8)
        detail = {"field": "body", "reason": "body_invalid"}
        return error_response(request, InvalidRequest(f"body: {exc.detail}", detail))
    return await handle_http_error(request, exc)


async def answer_unexpected(request: Request, exc: Exception) -> Response:
    """The 500 of a mounted app; the exception goes on up to the edge, which logs it once."""
    return error_response(
        request, OciError("internal server error; the server log has the details")
    )


API_EXCEPTION_HANDLERS = {
    RequestValidationError: handle_validation_error,
    AccountError: handle_account_error,
    HubError: handle_hub_error,
    OciError: handle_oci_error,
    HTTPException: handle_api_http_error,
    Exception: answer_unexpected,
}
