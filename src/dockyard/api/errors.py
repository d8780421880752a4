"""The one place where exceptions become HTTP responses, in the spec's error envelope."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from dockyard.api.hosts import origin
from dockyard.auth.accounts import AccountConflict, AccountError, AccountNotFound
from dockyard.build import errors as build
from dockyard.hub import errors as hub
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
    return _answer(request, exc.status, headers, body)


def entries_response(
    request: Request,
    status: int,
    entries: list[dict[str, Any]],
    headers: dict[str, str] | None = None,
) -> Response:
    """`{"errors": entries}` answered with `status`, for refusals that are no `OciError`."""
    body = orjson.dumps({"errors": entries})
    return _answer(request, status, {**API_VERSION_HEADER, **(headers or {})}, body)


def _answer(request: Request, status: int, headers: dict[str, str], body: bytes) -> Response:
    """The response; a HEAD answer leaves out the body."""
    if request.method == "HEAD":
        response = Response(b"", status, headers, media_type="application/json")
        response.headers["Content-Length"] = "0"
        return response
    return Response(body, status, headers, media_type="application/json")


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


class BadRequest(OciError):
    """A request that is not HTTP this server can use (a bad Host, a garbled head): 400."""

    code, status, default_message = "INVALID_REQUEST", 400, "the request cannot be used"


class InvalidRequest(OciError):
    code, status, default_message = "INVALID_REQUEST", 422, "invalid request"


REFUSALS: dict[type[Exception], tuple[int, str]] = {
    hub.HubError: (400, "INVALID_REQUEST"),
    hub.Invalid: (400, "INVALID_REQUEST"),
    hub.NotFound: (404, "NOT_FOUND"),
    hub.Conflict: (409, "CONFLICT"),
    hub.UpstreamFailed: (502, "UPSTREAM_FAILED"),
    AccountError: (422, "INVALID_REQUEST"),
    AccountNotFound: (404, "NOT_FOUND"),
    AccountConflict: (409, "CONFLICT"),
    build.BuildError: (400, "INVALID_REQUEST"),
    build.InvalidCustomization: (400, "INVALID_REQUEST"),
    build.InputUnavailable: (502, "UPSTREAM_FAILED"),
    build.InputRejected: (502, "INPUT_REJECTED"),
}
"""The status and code of each kind of refusal the services raise (hub/errors.py, and the
accounts service's), by class; an error is answered as the nearest class in its MRO."""


Refusal = hub.HubError | AccountError | build.BuildError


def refusal(exc: Refusal) -> tuple[int, str]:
    """The status and code `exc` is answered with."""
    return next(REFUSALS[kind] for kind in type(exc).__mro__ if kind in REFUSALS)


def _refused(
    request: Request, status: int, code: str, message: str, detail: Any = None
) -> Response:
    entry: dict[str, Any] = {"code": code, "message": message}
    if detail is not None:
        entry["detail"] = detail
    return entries_response(request, status, [entry])


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


async def handle_refusal(request: Request, exc: Exception) -> Response:
    """A service's refusal in the envelope, answered as its kind (`REFUSALS`)."""
    assert isinstance(exc, Refusal)
    status, code = refusal(exc)
    return _refused(request, status, code, str(exc), getattr(exc, "detail", None))


async def handle_api_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _refused(request, 404, "NOT_FOUND", f"no such path: {request.url.path}")
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
    hub.HubError: handle_refusal,
    AccountError: handle_refusal,
    build.BuildError: handle_refusal,
    OciError: handle_oci_error,
    HTTPException: handle_api_http_error,
    Exception: answer_unexpected,
}
