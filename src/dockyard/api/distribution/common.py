"""What every /v2 handler needs: access checks, ranges and query parameters (request bodies
are `api/bodies.py`'s)."""

from __future__ import annotations

from starlette.requests import Request

from dockyard.api.authn import caller
from dockyard.api.bodies import natural, shown
from dockyard.auth.policy import Action, Subject
from dockyard.metadata.repositories import RepositoryRow
from dockyard.oci.errors import (
    Denied,
    NameInvalid,
    PaginationNumberInvalid,
    RangeInvalid,
    Unauthorized,
)
from dockyard.registry.service import Registry


def registry(request: Request) -> Registry:
    reg: Registry = request.app.state.dockyard.registry
    return reg


async def authorize(
    request: Request, name: str, action: Action
) -> tuple[Subject, RepositoryRow | None]:
    """The caller and the repository, if the policy lets the caller do `action` on `name`.

    A bearer token must also have been issued for this repository and action; if not, the client
    is challenged for a token with the right scope.
    """
    request.state.scope = (
        f"repository:{name}:{'pull,push' if action == Action.PUSH else action.value}"
    )
    subject, claims = await caller(request)
    if claims is not None and not claims.grants("repository", name, action.value):
        raise Unauthorized(f"the bearer token does not grant {action.value} on repository {name!r}")
    return subject, await registry(request).repositories.authorize(subject, name, action)


async def may(request: Request, subject: Subject, name: str, action: Action) -> bool:
    """Whether the caller may also do `action` on another repository (cross-repository mount)."""
    _, claims = await caller(request)
    if claims is not None and not claims.grants("repository", name, action.value):
        return False
    try:
        await registry(request).repositories.authorize(subject, name, action)
    except (Unauthorized, Denied, NameInvalid):
        return False
    return True


MAX_PAGE = 10_000  # a larger `n` gets this many and a Link to the rest, as the spec allows


def page_size(request: Request) -> int | None:
    """The `n` of a listing: a non-negative count, capped at `MAX_PAGE`; None when absent."""
    value = request.query_params.get("n")
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()):
        raise PaginationNumberInvalid(
            f"n={shown(value)} must be a non-negative integer", {"n": value}
        )
    digits = value.lstrip("0") or "0"  # no int() of a 5,000-digit string
    return MAX_PAGE if len(digits) > len(str(MAX_PAGE)) else min(int(digits), MAX_PAGE)


def cursor(request: Request) -> str | None:
    """The `last` of a listing, the name that the page starts after.

    No tag or repository name holds a NUL (and PostgreSQL refuses one in text), so the part
    before the first NUL gives exactly the same page: every name that sorts after `a` also sorts
    after `a<NUL>...`, and no other name does.
    """
    last = request.query_params.get("last")
    return None if last is None else last.split("\x00", 1)[0]


def byte_range(header: str | None, size: int) -> tuple[int, int]:
    """One `bytes=a-b` range (inclusive) within `size`; the whole blob without a header.

    The numbers must be plain ASCII digits (no sign, no `_`); ones past 2**63 are simply
    beyond the blob, never a failed `int()` or an overflow.
    """
    if not header:
        return 0, size - 1
    unit, _, spec = header.partition("=")
    first_text, sep, last_text = spec.partition("-")
    first, last = first_text.strip(), last_text.strip()
    start_at, end_at = natural(first), natural(last)
    if (
        unit.strip() != "bytes"
        or not sep
        or "," in spec
        or (first and start_at is None)
        or (last and end_at is None)
        or (start_at is None and end_at is None)
    ):
        raise RangeInvalid(f"unsupported Range {shown(header)}: send one bytes=start-end range")
    if start_at is None:
        assert end_at is not None
        start, end = max(size - end_at, 0), size - 1  # the last `end_at` bytes
    else:
        start, end = start_at, size - 1 if end_at is None else min(end_at, size - 1)
    if start > end or start >= size:
        raise RangeInvalid(
            f"Range {shown(header)} is outside the blob's {size} bytes",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, end
