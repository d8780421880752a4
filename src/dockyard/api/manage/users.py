"""/users: user accounts (a site admin creates them) and their passwords.

Creating users and changing passwords takes a person signed in with a password: an access token
of any scope cannot, as on Docker Hub (`auth/policy.py`'s `may_administer`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from dockyard.api.clients import client_address
from dockyard.api.errors import InvalidRequest
from dockyard.api.manage.access import Edge, SignedIn, check, check_administers, may_see
from dockyard.api.manage.pagination import Page, Paging, page_of
from dockyard.api.manage.routing import GuardedRoute
from dockyard.api.manage.schema import (
    AccountName,
    AccountPath,
    Password,
    errors,
    timestamp,
)
from dockyard.auth.accounts import WeakPassword, WrongPassword
from dockyard.auth.passwords import MAX_LENGTH
from dockyard.metadata.accounts import UserInfo
from dockyard.oci.errors import Denied

router = APIRouter(
    prefix="/users", tags=["users"], responses=errors(401, 422), route_class=GuardedRoute
)


class User(BaseModel):
    name: str
    is_admin: bool
    created_at: datetime


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: AccountName
    password: Password
    is_admin: bool = False


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: Password
    current_password: str | None = Field(
        None,
        max_length=MAX_LENGTH,
        description="the password being replaced: needed to change your own; a site admin "
        "resets another user's without it",
    )


@contextmanager
def _password_field() -> Iterator[None]:
    """A refused password as the 422 of an invalid field, as the schema's own checks answer."""
    try:
        yield
    except WeakPassword as exc:
        field = "body.password"
        raise InvalidRequest(f"{field}: {exc}", {"field": field, "reason": "weak"}) from exc


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
    check_administers(subject, None, "site admins", "create users")
    with _password_field():
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


@router.patch("/{name}", responses=errors(403, 404))
async def change_user(
    name: AccountPath, body: UserChange, subject: SignedIn, edge: Edge, request: Request
) -> User:
    """Change a user's password: that user with their current password, or a site admin.

    Everything the old password earned stops working at once: Basic logins with it and refresh
    tokens earned with it (access tokens stay: they have their own lifetimes).
    """
    check_administers(
        subject, name, f"{name!r} and site admins", f"change the password of {name!r}"
    )
    if subject.name == name and body.current_password is None:
        field = "body.current_password"
        raise InvalidRequest(
            f"{field}: give your current password to change it",
            {"field": field, "reason": "missing"},
        )
    try:
        with _password_field():
            await edge.accounts.set_password(
                name, body.password, body.current_password, client_address(request.scope)
            )
    except WrongPassword as exc:
        raise Denied(str(exc)) from exc
    return _user(await edge.accounts.user(name))
