"""The one policy function, without I/O: who may pull, push, delete and manage settings."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.auth.policy import (
    ANONYMOUS,
    Action,
    Role,
    Scope,
    Subject,
    Target,
    allowed_actions,
    allows,
    may_administer,
    may_manage,
    signed_in_with_password,
)

PULL, PUSH, DELETE = Action.PULL, Action.PUSH, Action.DELETE
NOTHING: frozenset[Action] = frozenset()
READ_ONLY = frozenset({PULL})
READ_WRITE = frozenset({PULL, PUSH})
EVERYTHING = frozenset(Action)

ALICE = Subject(name="alice", user_id=1, roles={"alice": Role.OWNER, "acme": Role.OWNER})
BOB = Subject(name="bob", user_id=2, roles={"bob": Role.OWNER, "acme": Role.MEMBER})
CAROL = Subject(name="carol", user_id=3, roles={"carol": Role.OWNER, "other": Role.OWNER})
ADMIN = Subject(name="admin", user_id=4, is_admin=True, roles={"admin": Role.OWNER})
ACME_TOKEN = Subject(name="acme", roles={"acme": Role.OWNER}, scope=Scope.READ, org="acme")

PUBLIC = Target("acme/public", "acme", is_public=True)
PRIVATE = Target("acme/private", "acme", is_public=False)
TOP_LEVEL = Target("library", None, is_public=False)
TOP_LEVEL_PUBLIC = Target("library", None, is_public=True)


def with_scope(subject: Subject, scope: Scope | None) -> Subject:
    return replace(subject, scope=scope)


@pytest.mark.parametrize(
    ("subject", "target", "expected"),
    [
        # anonymous: public repositories may be pulled, nothing else
        (ANONYMOUS, PUBLIC, READ_ONLY),
        (ANONYMOUS, PRIVATE, NOTHING),
        (ANONYMOUS, TOP_LEVEL, NOTHING),
        (ANONYMOUS, TOP_LEVEL_PUBLIC, READ_ONLY),
        # organization owner: everything in the org
        (ALICE, PUBLIC, EVERYTHING),
        (ALICE, PRIVATE, EVERYTHING),
        # organization member: pull and push, no delete
        (BOB, PUBLIC, READ_WRITE),
        (BOB, PRIVATE, READ_WRITE),
        # a user of another organization: only what is public
        (CAROL, PUBLIC, READ_ONLY),
        (CAROL, PRIVATE, NOTHING),
        # every user owns their own namespace
        (CAROL, Target("carol/app", "carol"), EVERYTHING),
        (BOB, Target("bob/app", "bob"), EVERYTHING),
        (BOB, Target("alice/app", "alice"), NOTHING),
        (BOB, Target("alice/app", "alice", is_public=True), READ_ONLY),
        # one-component names belong to no namespace: only the site admin writes there
        (ALICE, TOP_LEVEL, NOTHING),
        (ALICE, TOP_LEVEL_PUBLIC, READ_ONLY),
        # site admin: everything, everywhere
        (ADMIN, PUBLIC, EVERYTHING),
        (ADMIN, PRIVATE, EVERYTHING),
        (ADMIN, TOP_LEVEL, EVERYTHING),
        (ADMIN, Target("nobody/app", "nobody"), EVERYTHING),
        # personal tokens cap the owner's rights
        (with_scope(ALICE, Scope.READ), PRIVATE, READ_ONLY),
        (with_scope(ALICE, Scope.WRITE), PRIVATE, READ_WRITE),
        (with_scope(ALICE, Scope.DELETE), PRIVATE, EVERYTHING),
        # ... but never raise them: a member's delete token still cannot delete
        (with_scope(BOB, Scope.DELETE), PRIVATE, READ_WRITE),
        (with_scope(CAROL, Scope.DELETE), PRIVATE, NOTHING),
        (with_scope(CAROL, Scope.DELETE), PUBLIC, READ_ONLY),
        # the site admin's tokens are capped too
        (with_scope(ADMIN, Scope.READ), PRIVATE, READ_ONLY),
        (with_scope(ADMIN, Scope.WRITE), TOP_LEVEL, READ_WRITE),
        # organization access tokens act for the org with their scope
        (ACME_TOKEN, PRIVATE, READ_ONLY),
        (with_scope(ACME_TOKEN, Scope.WRITE), PRIVATE, READ_WRITE),
        (with_scope(ACME_TOKEN, Scope.DELETE), PRIVATE, EVERYTHING),
        (with_scope(ACME_TOKEN, Scope.DELETE), Target("other/app", "other"), NOTHING),
        (with_scope(ACME_TOKEN, Scope.DELETE), Target("other/app", "other", True), READ_ONLY),
    ],
)
def test_allowed_actions(subject: Subject, target: Target, expected: frozenset[Action]) -> None:
    assert allowed_actions(subject, target) == expected
    for action in Action:
        assert allows(subject, target, action) == (action in expected)


def test_a_name_that_only_looks_like_a_namespace_grants_nothing() -> None:
    # roles are keyed by the namespace itself, not by a prefix of the repository name
    assert allowed_actions(BOB, Target("bobby/app", "bobby")) == NOTHING
    assert allowed_actions(BOB, Target("acme-corp/app", "acme-corp")) == NOTHING


@pytest.mark.parametrize(
    ("subject", "namespace", "expected"),
    [
        (ANONYMOUS, "acme", False),
        (ANONYMOUS, None, False),
        (ALICE, "acme", True),
        (ALICE, "alice", True),
        (ALICE, "other", False),
        (ALICE, None, False),
        (BOB, "acme", False),  # members push but do not manage
        (BOB, "bob", True),
        (CAROL, "acme", False),
        (ADMIN, "acme", True),
        (ADMIN, None, True),
        # only a delete-scoped token may manage, and only what its subject may
        (with_scope(ALICE, Scope.READ), "acme", False),
        (with_scope(ALICE, Scope.WRITE), "acme", False),
        (with_scope(ALICE, Scope.DELETE), "acme", True),
        (with_scope(BOB, Scope.DELETE), "acme", False),
        (with_scope(ADMIN, Scope.WRITE), "acme", False),
        (with_scope(ADMIN, Scope.DELETE), "acme", True),
        (ACME_TOKEN, "acme", False),
        (with_scope(ACME_TOKEN, Scope.DELETE), "acme", True),
        (with_scope(ACME_TOKEN, Scope.DELETE), "other", False),
    ],
)
def test_may_manage(subject: Subject, namespace: str | None, expected: bool) -> None:
    assert may_manage(subject, namespace) is expected


@pytest.mark.parametrize(
    ("subject", "namespace", "expected"),
    [
        (ANONYMOUS, "acme", False),
        (ANONYMOUS, None, False),
        (ALICE, "acme", True),
        (ALICE, "alice", True),
        (ALICE, "other", False),
        (ALICE, None, False),
        (BOB, "acme", False),
        (BOB, "bob", True),
        (ADMIN, "acme", True),
        (ADMIN, None, True),
        # no access token administers anything, whatever its scope (the exploit: an
        # organization token of scope delete making someone owner)
        (with_scope(ALICE, Scope.DELETE), "acme", False),
        (with_scope(ALICE, Scope.DELETE), "alice", False),
        (with_scope(ADMIN, Scope.DELETE), None, False),
        (with_scope(ACME_TOKEN, Scope.DELETE), "acme", False),
        (replace(ALICE, token_id=7), "alice", False),
        # a subject without a user (a command's stand-in) is nobody's password sign-in
        (Subject(name="admin", is_admin=True), None, False),
    ],
)
def test_only_a_password_sign_in_administers(
    subject: Subject, namespace: str | None, expected: bool
) -> None:
    assert may_administer(subject, namespace) is expected


def test_anonymous_is_the_nameless_subject() -> None:
    assert ANONYMOUS.is_anonymous
    assert not ALICE.is_anonymous
    assert not ACME_TOKEN.is_anonymous


def test_scopes_and_roles_are_ordered() -> None:
    """Each scope includes the ones before it; an owner can do all a member can."""
    reader, writer, deleter = (
        allowed_actions(with_scope(ADMIN, scope), PRIVATE) for scope in Scope
    )
    assert reader < writer < deleter == EVERYTHING
    member = Subject(name="m", roles={"acme": Role.MEMBER})
    owner = Subject(name="o", roles={"acme": Role.OWNER})
    assert allowed_actions(member, PRIVATE) < allowed_actions(owner, PRIVATE)


# --- properties ------------------------------------------------------------------------------

NAMESPACES = ["acme", "other", "alice", "bob"]
namespaces = st.sampled_from(NAMESPACES)
subjects = st.builds(
    Subject,
    name=st.one_of(st.none(), namespaces),
    user_id=st.one_of(st.none(), st.integers(1, 5)),
    is_admin=st.booleans(),
    roles=st.dictionaries(namespaces, st.sampled_from(Role), max_size=4),
    scope=st.one_of(st.none(), st.sampled_from(Scope)),
    org=st.one_of(st.none(), namespaces),
)
targets = st.builds(
    Target,
    name=st.just("x/y"),
    namespace=st.one_of(st.none(), namespaces),
    is_public=st.booleans(),
)
scopes = st.sampled_from(Scope)


@given(subjects, targets, scopes)
def test_a_token_never_grants_more_than_its_subject(
    subject: Subject, target: Target, scope: Scope
) -> None:
    untokened = with_scope(subject, None)
    tokened = with_scope(subject, scope)
    assert allowed_actions(tokened, target) <= allowed_actions(untokened, target)
    if may_manage(tokened, target.namespace):
        assert may_manage(untokened, target.namespace)
    assert not may_administer(tokened, target.namespace)


@given(subjects, st.one_of(st.none(), namespaces))
def test_administering_implies_managing_and_a_password(
    subject: Subject, namespace: str | None
) -> None:
    if may_administer(subject, namespace):
        assert signed_in_with_password(subject)
        assert may_manage(subject, namespace)


@given(subjects, targets, scopes, scopes)
def test_a_narrower_scope_never_grants_more(
    subject: Subject, target: Target, first: Scope, second: Scope
) -> None:
    order = list(Scope)
    narrow, wide = sorted((first, second), key=order.index)
    assert allowed_actions(with_scope(subject, narrow), target) <= allowed_actions(
        with_scope(subject, wide), target
    )


@given(subjects, targets)
def test_invariants_of_every_decision(subject: Subject, target: Target) -> None:
    granted = allowed_actions(subject, target)
    # public repositories can be pulled by anyone, whatever the token
    if target.is_public:
        assert PULL in granted
    # whoever may push or delete may also pull
    if granted & {PUSH, DELETE}:
        assert PULL in granted
    # a token's scope caps every grant
    if subject.scope is Scope.READ:
        assert granted <= READ_ONLY
    if subject.scope is Scope.WRITE:
        assert granted <= READ_WRITE
    # without admin rights or a role in the namespace, only public pulls are granted
    if not subject.is_admin and (target.namespace is None or target.namespace not in subject.roles):
        assert granted == (READ_ONLY if target.is_public else NOTHING)
    assert all(allows(subject, target, a) == (a in granted) for a in Action)
