"""/repositories: what the caller may see, and the settings of one repository.

A repository name has slashes (`acme/team/app`), so it fills several path segments. Routes for
things inside a repository go after a `/-/` separator, which no repository name contains
(GitLab's convention): `/repositories/acme/app/-/webhooks`. `REPOSITORY` is the path
parameter that matches a name and nothing more, so those routes never collide with these.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.convertors import Convertor, register_url_convertor

from dockyard.api.manage.access import Caller, Edge, SignedIn
from dockyard.api.manage.pagination import Page, Paging, page_of
from dockyard.api.manage.schema import ACCOUNT_NAME_PATTERN, errors
from dockyard.api.state import EdgeState
from dockyard.auth.policy import Action
from dockyard.hub.errors import Conflict
from dockyard.metadata.repositories import RepositoryRow
from dockyard.oci.names import MAX_NAME_LENGTH, NAME_PATTERN, namespace_of


class _RepositoryName(Convertor[str]):
    regex = NAME_PATTERN.pattern

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("repository", _RepositoryName())
REPOSITORY = "{name:repository}"
"""The path parameter of a repository's name, for routes of this and other resources."""

RepositoryName = Annotated[
    str,
    Path(
        max_length=MAX_NAME_LENGTH,
        pattern=f"^{NAME_PATTERN.pattern}$",
        description="the full name, slashes and all: acme/app",
        examples=["acme/app"],
    ),
]
"""The parameter type of a `REPOSITORY` path parameter."""

SparseIndexes = Literal["on", "off", "site"]

router = APIRouter(prefix="/repositories", tags=["repositories"], responses=errors(401, 422))


class Repository(BaseModel):
    name: str
    namespace: str | None
    visibility: Literal["public", "private"]
    immutable_tags: bool
    sparse_indexes: SparseIndexes = Field(
        description="on: an index may name manifests the repository lacks (as a "
        "platform-subset copy keeps an index's digest); off: every entry must exist; site: "
        "the site's index_platforms decides"
    )
    els: bool | None = Field(
        description="mirrored repositories: whether end-of-life tags are mirrored; else null"
    )


class RepositoryPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    visibility: Literal["public", "private"] | None = None
    immutable_tags: bool | None = None
    sparse_indexes: SparseIndexes | None = None
    els: bool | None = Field(
        None, description="mirrored repositories: off stops only the end-of-life tags"
    )


_SPARSE_NAMES: dict[bool | None, SparseIndexes] = {True: "on", False: "off", None: "site"}


def _repository(row: RepositoryRow, els: dict[int, bool]) -> Repository:
    visibility: Literal["public", "private"] = "public" if row.is_public else "private"
    return Repository(
        name=row.name,
        namespace=namespace_of(row.name),
        visibility=visibility,
        immutable_tags=row.immutable_tags,
        sparse_indexes=_SPARSE_NAMES[row.sparse_indexes],
        els=els.get(row.id),
    )


async def _shown(edge: EdgeState, rows: list[RepositoryRow]) -> list[Repository]:
    els = await edge.hub.mirrors.els_of([row.id for row in rows])
    return [_repository(row, els) for row in rows]


@router.get("", responses=errors(), openapi_extra={"security": [{}, {"basic": []}, {"bearer": []}]})
async def list_repositories(
    request: Request,
    response: Response,
    subject: Caller,
    edge: Edge,
    paging: Paging,
    namespace: Annotated[
        str | None,
        Query(max_length=255, pattern=ACCOUNT_NAME_PATTERN, description="only those under it"),
    ] = None,
) -> Page[Repository]:
    """Repositories the caller may pull from, by name (public ones for anyone)."""
    rows, _ = await edge.registry.repositories.visible(
        subject, paging.after_name(), paging.limit + 1, namespace
    )
    found = await _shown(edge, rows)
    return page_of(request, response, paging, found, lambda repository: repository.name)


@router.get(
    f"/{REPOSITORY}",
    responses=errors(400, 403, 404),
    openapi_extra={"security": [{}, {"basic": []}, {"bearer": []}]},
)
async def get_repository(name: RepositoryName, subject: Caller, edge: Edge) -> Repository:
    """One repository (whoever may pull from it)."""
    row = await edge.registry.repositories.require(subject, name, Action.PULL)
    return (await _shown(edge, [row]))[0]


@router.patch(f"/{REPOSITORY}", responses=errors(400, 403, 404, 409))
async def update_repository(
    name: RepositoryName, body: RepositoryPatch, subject: SignedIn, edge: Edge
) -> Repository:
    """Change visibility, immutable tags, sparse indexes or, for a mirrored repository, ELS
    (owners of its namespace and site admins)."""
    if body.els is not None:  # refused before anything changes
        current = await edge.registry.repositories.require(subject, name, Action.PULL)
        if current.id not in await edge.hub.mirrors.els_of([current.id]):
            raise Conflict(f"{name!r} is not mirrored: ELS applies to mirrored repositories")
    row = await edge.registry.repositories.configure(
        subject, name, body.visibility, body.immutable_tags, body.sparse_indexes
    )
    if body.els is not None:
        await edge.hub.mirrors.set_repository_els(subject, row.id, body.els)
    return (await _shown(edge, [row]))[0]


@router.delete(
    f"/{REPOSITORY}",
    status_code=204,
    response_class=Response,
    responses=errors(400, 403, 404),
)
async def delete_repository(name: RepositoryName, subject: SignedIn, edge: Edge) -> Response:
    """Delete a repository with its tags and manifests (owners and site admins)."""
    await edge.registry.repositories.delete(subject, name)  # voids every cache of this host
    return Response(status_code=204)
