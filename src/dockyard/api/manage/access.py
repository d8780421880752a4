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

from dockyard.api.authn import caller
from dockyard.api.state import EdgeState
from dockyard.auth.policy import Subject, may_administer, may_manage, signed_in_with_password
from dockyard.oci.errors import Denied, Unauthorized


async def _caller(request: Request) -> Subject:
    subject, _ = await caller(request)
    return subject


async def _signed_in(subject: Annotated[Subject, Depends(_caller)]) -> Subject:
    if subject.is_anonymous:
        raise Unauthorized(
            "sign in to use the management API: HTTP Basic with a password or an access token, "
            "or a Bearer token from /token"
        )
    return subject


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
