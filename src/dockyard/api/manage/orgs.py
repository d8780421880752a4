"""/orgs: organizations and their members."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from dockyard.api.manage.access import Edge, SignedIn, check, check_administers, may_see
from dockyard.api.manage.pagination import Page, Paging, page_of
from dockyard.api.manage.schema import AccountName, AccountPath, errors, timestamp
from dockyard.auth.policy import Role, Subject, signed_in_with_password
from dockyard.metadata.accounts import OrgInfo

router = APIRouter(prefix="/orgs", tags=["organizations"], responses=errors(401, 422))


class Org(BaseModel):
    name: str
    created_at: datetime
    role: Role | None = Field(
        description="the caller's role in it; null for a site admin who is not a member"
    )


class OrgCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: AccountName


class Member(BaseModel):
    user: str
    role: Role


class MemberSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role


def _org(info: OrgInfo, subject: Subject) -> Org:
    return Org(
        name=info.name, created_at=timestamp(info.created_at), role=subject.roles.get(info.name)
    )


def _members_only(subject: Subject, org: str) -> None:
    check(may_see(subject, org), f"only members of {org!r} and site admins may see it")


def _owners_only(subject: Subject, org: str, what: str) -> None:
    check_administers(subject, org, f"owners of {org!r} and site admins", f"{what} of {org!r}")


@router.get("", responses=errors(404))
async def list_orgs(
    request: Request, response: Response, subject: SignedIn, edge: Edge, paging: Paging
) -> Page[Org]:
    """Organizations the caller belongs to (every one, for a site admin)."""
    after = paging.after_name()
    if subject.org is not None:  # an organization's access token sees that organization
        own = await edge.accounts.org(subject.org)
        found = [own] if after is None or own.name > after else []
    else:
        member = None if subject.is_admin else subject.name
        found = await edge.accounts.orgs(after, paging.limit + 1, member)
    orgs = [_org(info, subject) for info in found]
    return page_of(request, response, paging, orgs, lambda org: org.name)


@router.post("", status_code=201, responses=errors(403, 409))
async def create_org(body: OrgCreate, subject: SignedIn, edge: Edge) -> Org:
    """Create an organization; the caller, signed in with a password, becomes its first owner."""
    check_administers(subject, subject.name, "users", "create organizations")
    assert subject.name is not None
    await edge.accounts.create_org(body.name, subject.name)
    info = await edge.accounts.org(body.name)
    return Org(name=info.name, created_at=timestamp(info.created_at), role=Role.OWNER)


@router.get("/{org}", responses=errors(403, 404))
async def get_org(org: AccountPath, subject: SignedIn, edge: Edge) -> Org:
    """One organization (its members and site admins)."""
    _members_only(subject, org)
    return _org(await edge.accounts.org(org), subject)


@router.get("/{org}/members", responses=errors(403, 404))
async def list_members(
    org: AccountPath,
    request: Request,
    response: Response,
    subject: SignedIn,
    edge: Edge,
    paging: Paging,
) -> Page[Member]:
    """An organization's members and their roles (its members and site admins)."""
    _members_only(subject, org)
    found = await edge.accounts.members(org, paging.after_name(), paging.limit + 1)
    members = [Member(user=m.user, role=Role(m.role)) for m in found]
    return page_of(request, response, paging, members, lambda member: member.user)


@router.put("/{org}/members/{user}", responses=errors(403, 404, 409))
async def set_member(
    org: AccountPath, user: AccountPath, body: MemberSet, subject: SignedIn, edge: Edge
) -> Member:
    """Add a user to an organization or change their role (owners and site admins, signed in
    with a password: never an access token)."""
    _owners_only(subject, org, "change the members")
    await edge.accounts.set_role(org, user, body.role)
    return Member(user=user, role=body.role)


@router.delete(
    "/{org}/members/{user}",
    status_code=204,
    response_class=Response,
    responses=errors(403, 404, 409),
)
async def remove_member(
    org: AccountPath, user: AccountPath, subject: SignedIn, edge: Edge
) -> Response:
    """Take a user out of an organization (owners and site admins; members may leave), signed
    in with a password."""
    leaving = subject.name == user and signed_in_with_password(subject)
    if not leaving:
        _owners_only(subject, org, "remove members")
    await edge.accounts.remove_member(org, user)
    return Response(status_code=204)
