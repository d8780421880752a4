"""Who calls the management API, as FastAPI dependencies, and the checks routers share.

The credentials are those of /v2, read by `api/authn.py`: HTTP Basic with a password or an
access token, or a Bearer token from /token (it names the subject; the repositories it grants
matter only to /v2). Decisions compose `auth/policy.py`'s `may_manage` (repositories, mirrors,
webhooks: an access token of scope delete may) and `may_administer` (members, roles, tokens,
users, passwords: only a person signed in with a password may); repository access goes through
`Repositories.authorize`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant

from dockyard.api.authn import caller
from dockyard.api.state import EdgeState
from dockyard.auth.policy import Subject, may_administer, may_manage, signed_in_with_password
from dockyard.oci.errors import Denied, Unauthorized


async def subject_of(request: Request) -> Subject:
    """The caller, verified once per request (a route may have asked before reading the body)."""
    subject: Subject | None = getattr(request.state, "manage_subject", None)
    if subject is None:
        subject, _ = await caller(request)
        request.state.manage_subject = subject
    return subject


def refuse_anonymous(subject: Subject) -> Subject:
    """401 for a caller without credentials."""
    if subject.is_anonymous:
        raise Unauthorized(
            "sign in to use the management API: HTTP Basic with a password or an access token, "
            "or a Bearer token from /token"
        )
    return subject


async def _caller(request: Request) -> Subject:
    return await subject_of(request)


async def _signed_in(subject: Annotated[Subject, Depends(_caller)]) -> Subject:
    return refuse_anonymous(subject)


def requires_sign_in(dependant: Dependant) -> bool:
    """Whether an operation takes `SignedIn` (directly or through another dependency)."""
    return any(
        dependency.call is _signed_in or requires_sign_in(dependency)
        for dependency in dependant.dependencies
    )


def _edge(request: Request) -> EdgeState:
    state: EdgeState = request.app.state.dockyard
    return state


Caller = Annotated[Subject, Depends(_caller)]
"""The subject of the request; anonymous when it came without credentials."""
SignedIn = Annotated[Subject, Depends(_signed_in)]
"""The subject of the request; 401 when it came without credentials."""
Edge = Annotated[EdgeState, Depends(_edge)]
"""The services the edge works with (`app.py` builds them)."""


def may_see(subject: Subject, namespace: str) -> bool:
    """Whether `subject` may read a user's or an organization's details: its members, admins."""
    return subject.is_admin or namespace in subject.roles


def is_site_admin(subject: Subject) -> bool:
    """A site admin signed in with a password, or with an access token of scope `delete`."""
    return may_manage(subject, None)


TOKENS_CANNOT = (
    "access tokens cannot {}: sign in with a password (HTTP Basic with the user's password, "
    "or a Bearer token from /token earned with it)"
)


def check_administers(subject: Subject, namespace: str | None, who: str, what: str) -> None:
    """Refuse with 403 unless `may_administer(subject, namespace)`; the message says whether the
    access token was the reason, or who may `what`."""
    check(signed_in_with_password(subject), TOKENS_CANNOT.format(what))
    check(may_administer(subject, namespace), f"only {who} may {what}")


def check(allowed: bool, refusal: str) -> None:
    """Refuse with 403 `Denied` unless `allowed`; `refusal` says who may."""
    if not allowed:
        raise Denied(refusal)
