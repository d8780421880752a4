"""The one policy function: may this subject do this action on this repository?"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Action(StrEnum):
    PULL = "pull"
    PUSH = "push"
    DELETE = "delete"


class Role(StrEnum):
    OWNER = "owner"
    MEMBER = "member"


class Scope(StrEnum):
    """What an access token may do, at most: each scope includes the ones before it."""

    READ = "read"
    WRITE = "write"
    DELETE = "delete"


_SCOPE_ACTIONS = {
    Scope.READ: frozenset({Action.PULL}),
    Scope.WRITE: frozenset({Action.PULL, Action.PUSH}),
    Scope.DELETE: frozenset({Action.PULL, Action.PUSH, Action.DELETE}),
}
_ROLE_ACTIONS = {
    Role.OWNER: frozenset(Action),
    Role.MEMBER: frozenset({Action.PULL, Action.PUSH}),
}


@dataclass(frozen=True, slots=True)
class Subject:
    """Who is asking: anonymous, a user (by password or personal token) or an organization token.

    `roles` maps each namespace the subject belongs to onto its role (a user owns their own
    namespace); `scope` caps a token's actions; `org` is set for organization access tokens;
    `token_id` and `token_expires_at` name the access token used, so nothing derived from it
    (cached logins, bearer and refresh tokens) outlives it.
    """

    name: str | None = None
    user_id: int | None = None
    is_admin: bool = False
    roles: Mapping[str, Role] = field(default_factory=dict)
    scope: Scope | None = None
    org: str | None = None
    token_id: int | None = None  # the access token the subject signed in with
    token_expires_at: float | None = None

    @property
    def is_anonymous(self) -> bool:
        return self.name is None


ANONYMOUS = Subject()


@dataclass(frozen=True, slots=True)
class Target:
    """What the policy needs to know of a repository (it may not exist yet)."""

    name: str
    namespace: str | None
    is_public: bool = False


def allowed_actions(subject: Subject, target: Target) -> frozenset[Action]:
    """Every action `subject` may take on `target`."""
    ceiling = _SCOPE_ACTIONS[subject.scope] if subject.scope else frozenset(Action)
    granted: frozenset[Action] = frozenset({Action.PULL}) if target.is_public else frozenset()
    if subject.is_admin:
        granted = frozenset(Action)
    elif target.namespace is not None:
        role = subject.roles.get(target.namespace)
        if role is not None:
            granted |= _ROLE_ACTIONS[role]
    return granted & ceiling


def allows(subject: Subject, target: Target, action: Action) -> bool:
    """The decision for one request."""
    return action in allowed_actions(subject, target)


def may_manage(subject: Subject, namespace: str | None) -> bool:
    """Whether `subject` may change a repository's or an organization's settings (its
    members and tokens are `may_administer`'s)."""
    if subject.scope is not None and subject.scope != Scope.DELETE:
        return False
    if subject.is_admin:
        return True
    return namespace is not None and subject.roles.get(namespace) == Role.OWNER


def signed_in_with_password(subject: Subject) -> bool:
    """A person who signed in with their password: HTTP Basic, or a bearer or refresh token
    earned with it; not an access token (personal or organization) of any scope."""
    return (
        subject.user_id is not None
        and subject.token_id is None
        and subject.scope is None
        and subject.org is None
    )


def may_administer(subject: Subject, namespace: str | None) -> bool:
    """Whether `subject` may change who has access to `namespace` (None: the site): members and
    their roles, access tokens, users and passwords.

    Only a person signed in with a password, its owner or a site admin: never an access token,
    whatever its scope, as on Docker Hub (a token may manage repositories, not the account).
    Otherwise a token could make anyone an owner, or mint tokens that outlive it.
    """
    if not signed_in_with_password(subject):
        return False
    if subject.is_admin:
        return True
    return namespace is not None and subject.roles.get(namespace) == Role.OWNER
