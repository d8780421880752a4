"""Who is calling: anonymous, HTTP Basic (password or token), or a Bearer token we issued."""

from __future__ import annotations

import base64
import binascii

from starlette.requests import Request

from dockyard.api.clients import client_address
from dockyard.auth.policy import ANONYMOUS, Subject
from dockyard.auth.tokens import Claims
from dockyard.oci.errors import Unauthorized


async def caller(request: Request) -> tuple[Subject, Claims | None]:
    """The subject of the request, and the bearer token's claims when it came with one.

    Wrong credentials are refused at once rather than treated as anonymous, so a client with a
    mistyped password hears about it; after too many, with 429 before they are checked.
    """
    header = request.headers.get("authorization")
    if not header:
        return ANONYMOUS, None
    scheme, _, value = header.partition(" ")
    state = request.app.state.dockyard
    if scheme.lower() == "basic":
        username, password = parse_basic(value)
        subject = await state.accounts.authenticate(
            username, password, client_address(request.scope)
        )
        if subject is None:
            raise Unauthorized("invalid username, password or token")
        return subject, None
    if scheme.lower() == "bearer":
        claims = state.issuer.verify(value.strip())
        if claims.subject is None:
            return ANONYMOUS, claims
        subject = await state.accounts.subject(
            claims.subject, claims.scope, claims.org, claims.token_id
        )
        return subject, claims
    raise Unauthorized(f"unsupported authorization scheme {scheme!r}: use Basic or Bearer")


def parse_basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("malformed Basic credentials") from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise Unauthorized("malformed Basic credentials: expected user:password")
    return username, password
