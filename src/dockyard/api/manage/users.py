"""/users: user accounts (a site admin creates them)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from dockyard.api.manage.access import Edge, SignedIn, check, is_site_admin, may_see
from dockyard.api.manage.pagination import Page, Paging, page_of
from dockyard.api.manage.routing import GuardedRoute
from dockyard.api.manage.schema import (
    AccountName,
    AccountPath,
    Password,
    errors,
    timestamp,
)
from dockyard.metadata.accounts import UserInfo

router = APIRouter(
    prefix="/users", tags=["users"], responses=errors(401, 422), route_class=GuardedRoute
)

_ADMINS_ONLY = "only site admins (signed in with a password, or a token of scope delete) may {}"


class User(BaseModel):
    name: str
    is_admin: bool
    created_at: datetime


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: AccountName
    password: Password
    is_admin: bool = False


def _user(info: UserInfo) -> User:
    return User(name=info.name, is_admin=info.is_admin, created_at=timestamp(info.created_at))


@router.get("", responses=errors(403))
async def list_users(
    request: Request, response: Response, subject: SignedIn, edge: Edge, paging: Paging
) -> Page[User]:
    """Every user (site admins)."""
    check(subject.is_admin, "only site admins may list users")
    found = await edge.accounts.users(paging.after_name(), paging.limit + 1)
    return page_of(request, response, paging, [_user(u) for u in found], lambda u: u.name)


@router.post("", status_code=201, responses=errors(403, 409))
async def create_user(body: UserCreate, subject: SignedIn, edge: Edge) -> User:
    """Create a user with a password (site admins)."""
    check(is_site_admin(subject), _ADMINS_ONLY.format("create users"))
    await edge.accounts.create_user(body.name, body.password, body.is_admin)
    return _user(await edge.accounts.user(body.name))


@router.get("/{name}", responses=errors(403, 404))
async def get_user(name: AccountPath, subject: SignedIn, edge: Edge) -> User:
    """One user (that user and site admins)."""
    check(
        may_see(subject, name) and subject.org is None,
        f"only {name!r} and site admins may see this account",
    )
    return _user(await edge.accounts.user(name))
