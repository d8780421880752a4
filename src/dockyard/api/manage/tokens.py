"""/users/{name}/tokens and /orgs/{org}/tokens: personal and organization access tokens.

A token's secret is in the answer that creates it and nowhere else, ever. Only a caller signed
in with a password lists, creates and revokes tokens (`may_administer`), so no token mints
another that outlives or outranks it, or revokes its siblings.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from dockyard.api.manage.access import Edge, SignedIn, check, check_administers
from dockyard.api.manage.pagination import Page, Paging, page_of
from dockyard.api.manage.schema import (
    INT32_MAX,
    AccountPath,
    Label,
    errors,
    optional_timestamp,
    timestamp,
)
from dockyard.auth.policy import Scope
from dockyard.metadata.accounts import TokenInfo

router = APIRouter(tags=["tokens"], responses=errors(401, 422))

TokenId = Annotated[int, Path(ge=1, le=INT32_MAX)]
_OWNERS = "owners of {!r} and site admins"


class Token(BaseModel):
    id: int
    name: str
    scope: Scope = Field(description="read: pull; write: pull and push; delete: everything")
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


class TokenCreated(Token):
    secret: str = Field(description="the token itself: shown in this answer only, never again")


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Label
    scope: Scope
    expires_in_seconds: int | None = Field(
        None, ge=60, le=10 * 365 * 86400, description="null: the token does not expire"
    )


def _token(info: TokenInfo) -> Token:
    return Token(
        id=info.id,
        name=info.name,
        scope=Scope(info.scope),
        created_at=timestamp(info.created_at),
        expires_at=optional_timestamp(info.expires_at),
        last_used_at=optional_timestamp(info.last_used_at),
    )


# personal access tokens ---------------------------------------------------------------------


@router.get("/users/{name}/tokens", responses=errors(403, 404))
async def list_user_tokens(
    name: AccountPath,
    request: Request,
    response: Response,
    subject: SignedIn,
    edge: Edge,
    paging: Paging,
) -> Page[Token]:
    """A user's personal access tokens, without their secrets (that user and site admins)."""
    check_administers(subject, name, f"{name!r} and site admins", f"list the tokens of {name!r}")
    found = await edge.accounts.tokens(paging.after_id(), paging.limit + 1, user=name)
    return page_of(request, response, paging, [_token(t) for t in found], lambda t: t.id)


@router.post("/users/{name}/tokens", status_code=201, responses=errors(403, 404))
async def create_user_token(
    name: AccountPath, body: TokenCreate, subject: SignedIn, edge: Edge
) -> TokenCreated:
    """Create a personal access token; the answer holds its secret, shown this once."""
    check_administers(subject, name, repr(name), f"create tokens for {name!r}")
    check(subject.name == name, f"only {name!r} may create its tokens; site admins may not")
    info, secret = await edge.accounts.issue_token(
        body.name, body.scope, user=name, expires_in=body.expires_in_seconds
    )
    return TokenCreated(**_token(info).model_dump(), secret=secret)


@router.delete(
    "/users/{name}/tokens/{token_id}",
    status_code=204,
    response_class=Response,
    responses=errors(403, 404),
)
async def revoke_user_token(
    name: AccountPath, token_id: TokenId, subject: SignedIn, edge: Edge
) -> Response:
    """Revoke a personal access token (that user and site admins)."""
    check_administers(subject, name, f"{name!r} and site admins", f"revoke tokens of {name!r}")
    await edge.accounts.revoke_token(token_id, user=name)
    return Response(status_code=204)


# organization access tokens -----------------------------------------------------------------


@router.get("/orgs/{org}/tokens", responses=errors(403, 404))
async def list_org_tokens(
    org: AccountPath,
    request: Request,
    response: Response,
    subject: SignedIn,
    edge: Edge,
    paging: Paging,
) -> Page[Token]:
    """An organization's access tokens, without their secrets (owners and site admins)."""
    check_administers(subject, org, _OWNERS.format(org), f"list the tokens of {org!r}")
    found = await edge.accounts.tokens(paging.after_id(), paging.limit + 1, org=org)
    return page_of(request, response, paging, [_token(t) for t in found], lambda t: t.id)


@router.post("/orgs/{org}/tokens", status_code=201, responses=errors(403, 404))
async def create_org_token(
    org: AccountPath, body: TokenCreate, subject: SignedIn, edge: Edge
) -> TokenCreated:
    """Create an organization access token; the answer holds its secret, shown this once."""
    check_administers(subject, org, _OWNERS.format(org), f"create tokens for {org!r}")
    info, secret = await edge.accounts.issue_token(
        body.name, body.scope, org=org, expires_in=body.expires_in_seconds
    )
    return TokenCreated(**_token(info).model_dump(), secret=secret)


@router.delete(
    "/orgs/{org}/tokens/{token_id}",
    status_code=204,
    response_class=Response,
    responses=errors(403, 404),
)
async def revoke_org_token(
    org: AccountPath, token_id: TokenId, subject: SignedIn, edge: Edge
) -> Response:
    """Revoke an organization access token (owners and site admins)."""
    check_administers(subject, org, _OWNERS.format(org), f"revoke tokens of {org!r}")
    await edge.accounts.revoke_token(token_id, org=org)
    return Response(status_code=204)
