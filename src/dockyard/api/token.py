"""The Docker token endpoint: GET with Basic credentials, or the OAuth2 POST form."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockyard.api.authn import caller
from dockyard.api.bodies import small_body
from dockyard.api.clients import client_address
from dockyard.auth.policy import Subject, allowed_actions
from dockyard.auth.tokens import REFRESH_TTL, Grant, actions_of, parse_scope
from dockyard.oci.errors import OciError, Unauthorized
from dockyard.oci.names import validate_name

TOKEN_FORM_LIMIT = 8 * 1024
"""The largest form POST /token reads: a password or refresh token and a few scopes. The same
as the usual limit on a request's head, which carries GET /token's scopes."""


class TokenRequestInvalid(OciError):
    code, status, default_message = "UNSUPPORTED", 400, "invalid token request"


async def get_token(request: Request) -> Response:
    """`GET /token?service=…&scope=…` answered for the Basic credentials given, or anonymously."""
    subject, claims = await caller(request)
    if claims is not None:
        raise Unauthorized("present Basic credentials (or none) to the token endpoint")
    scopes = request.query_params.getlist("scope")
    body = await _issue(request, subject, scopes)
    if request.query_params.get("offline_token") == "true" and not subject.is_anonymous:
        body["refresh_token"] = await _refresh_token(request, subject)
    return JSONResponse(body)


async def post_token(request: Request) -> Response:
    """The OAuth2 form: `grant_type=password` or `grant_type=refresh_token`."""
    raw = await small_body(request, TOKEN_FORM_LIMIT, "the token request")
    form = dict(parse_qsl(raw.decode("utf-8", "replace")))
    state = request.app.state.dockyard
    grant_type = str(form.get("grant_type", ""))
    scopes = str(form.get("scope", "")).split()
    subject: Subject | None
    if grant_type == "password":
        subject = await state.accounts.authenticate(
            str(form.get("username", "")),
            str(form.get("password", "")),
            client_address(request.scope),
        )
        if subject is None:
            raise Unauthorized("invalid username, password or token")
    elif grant_type == "refresh_token":
        claims = state.issuer.verify(str(form.get("refresh_token", "")), kind="refresh")
        if claims.subject is None:
            raise Unauthorized("refresh token names no account")
        if claims.password_stamp is not None and claims.password_stamp != (
            await state.accounts.password_stamp(claims.subject)
        ):
            raise Unauthorized(
                f"the password of {claims.subject!r} changed after this refresh token was "
                "issued: sign in again"
            )
        subject = await state.accounts.subject(
            claims.subject, claims.scope, claims.org, claims.token_id
        )
    else:
        raise TokenRequestInvalid(
            f"unsupported grant_type {grant_type!r}: use password or refresh_token"
        )
    body = await _issue(request, subject, scopes)
    if str(form.get("access_type", "")) == "offline" or grant_type == "refresh_token":
        body["refresh_token"] = (
            str(form.get("refresh_token"))
            if grant_type == "refresh_token"
            else await _refresh_token(request, subject)
        )
    return JSONResponse(body)


async def _issue(request: Request, subject: Subject, scopes: list[str]) -> dict[str, object]:
    state = request.app.state.dockyard
    grants = []
    for text in " ".join(scopes).split():
        grant = parse_scope(text)
        if grant is None:
            continue
        granted = await _grant(request, subject, grant)
        if granted is not None:
            grants.append(granted)
    token, expires_in, issued = state.issuer.issue(subject, grants)
    return {
        "token": token,
        "access_token": token,
        "expires_in": expires_in,
        "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(issued)),
        "scope": " ".join(f"{g.type}:{g.name}:{','.join(sorted(g.actions))}" for g in grants),
    }


async def _grant(request: Request, subject: Subject, asked: Grant) -> Grant | None:
    """The part of `asked` the policy allows (never more than asked)."""
    if asked.type == "registry":
        if asked.name == "catalog":  # anyone may list; the listing shows what they may pull
            return Grant("registry", "catalog", frozenset({"*"}))
        return None
    try:
        validate_name(asked.name)
    except OciError:
        return None
    registry = request.app.state.dockyard.registry
    repository = await registry.repositories.get(asked.name)
    # a public pull-through cache repository may be pulled before it exists here
    policy_resource = await registry.policy_resource(asked.name, repository)
    allowed = allowed_actions(subject, policy_resource) & actions_of(asked)
    if not allowed:
        return None
    return Grant("repository", asked.name, frozenset(a.value for a in allowed))


async def _refresh_token(request: Request, subject: Subject) -> str:
    """A refresh token; one earned with a password stops working when the password changes
    (one earned with an access token already dies with that token)."""
    state = request.app.state.dockyard
    stamp = None
    if subject.token_id is None and subject.org is None and subject.name is not None:
        stamp = await state.accounts.password_stamp(subject.name)
    token, _, _ = state.issuer.issue(
        subject, [], ttl=REFRESH_TTL, kind="refresh", password_stamp=stamp
    )
    return str(token)
