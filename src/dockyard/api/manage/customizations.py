"""/customizations: mirrored images customized (packages, artifacts, files, accounts,
configuration) into images Dockyard keeps rebuilt, and their builds."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from dockyard.api.manage.access import Edge, SignedIn
from dockyard.api.manage.pagination import Page, Paging, page_of
from dockyard.api.manage.routing import GuardedRoute
from dockyard.api.manage.schema import (
    ACCOUNT_NAME_PATTERN,
    INT32_MAX,
    errors,
    optional_timestamp,
    timestamp,
)
from dockyard.build.model import Customization as Document
from dockyard.build.model import to_fields
from dockyard.hub.customizations import Customizations
from dockyard.hub.errors import Invalid
from dockyard.metadata.customizations import BuildRow, CustomizationRow
from dockyard.oci.names import MAX_NAME_LENGTH, NAME_PATTERN

router = APIRouter(
    prefix="/customizations",
    tags=["customizations"],
    responses=errors(401, 422),
    route_class=GuardedRoute,
)
CustomizationId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[a-f0-9]+$")]
BuildId = Annotated[int, Path(ge=1, le=INT32_MAX)]


class Target(BaseModel):
    destination: str
    tag: str = Field(description="the base image's tag")
    result_tag: str = Field(description="the tag its builds get: TAG_SUFFIX")


class Customization(BaseModel):
    id: str
    name: str
    namespace: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    targets: list[Target]
    document: dict[str, Any] = Field(
        description="the customization as Docker's YAML has it (with its id): what edit takes"
    )


class Build(BaseModel):
    id: int
    repository: str
    tag: str = Field(description="the base image's tag")
    trigger: str = Field(description="created, edited, base, artifact, packages or manual")
    trigger_detail: str | None
    status: str = Field(description="queued, running, succeeded, unchanged or failed")
    job_id: int | None
    digest: str | None = Field(description="the index the build pushed")
    error: str | None
    lock: Any = Field(None, description="every input digest the build used")
    changes: Any = Field(None, description="what changed against the build before")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class Queued(BaseModel):
    builds: list[int]


def _customization(row: CustomizationRow) -> Customization:
    document = Customizations.document(row)
    return Customization(
        id=row.uid,
        name=row.name,
        namespace=row.namespace,
        created_by=row.created_by,
        created_at=timestamp(row.created_at),
        updated_at=timestamp(row.updated_at),
        targets=[
            Target(destination=t.repository, tag=t.base_tag, result_tag=t.result_tag)
            for t in row.targets
        ],
        document={"id": row.uid, **to_fields(document)},
    )


def _build(row: BuildRow) -> Build:
    return Build(
        id=row.id,
        repository=row.repository,
        tag=row.base_tag,
        trigger=row.trigger,
        trigger_detail=row.trigger_detail,
        status=row.status,
        job_id=row.job_id,
        digest=row.result_digest,
        error=row.error,
        lock=orjson.loads(row.lock) if row.lock else None,
        changes=orjson.loads(row.changes) if row.changes else None,
        created_at=timestamp(row.created_at),
        started_at=optional_timestamp(row.started_at),
        finished_at=optional_timestamp(row.finished_at),
    )


@router.get("", responses=errors(404))
async def list_customizations(
    request: Request,
    response: Response,
    subject: SignedIn,
    edge: Edge,
    paging: Paging,
    org: Annotated[str | None, Query(max_length=255, pattern=ACCOUNT_NAME_PATTERN)] = None,
    repository: Annotated[
        str | None, Query(max_length=MAX_NAME_LENGTH, pattern=f"^{NAME_PATTERN.pattern}$")
    ] = None,
) -> Page[Customization]:
    """Customizations of repositories the caller may pull from, oldest first."""
    rows = await edge.hub.customizations.find(
        subject,
        namespace=org,
        repository=repository,
        after_id=paging.after_id() or 0,
        limit=paging.limit + 1,
    )
    items = [_customization(r) for r in rows]
    ids = {r.uid: r.id for r in rows}
    return page_of(request, response, paging, items, lambda c: ids[c.id])


@router.post("", status_code=201, responses=errors(400, 403, 409))
async def create_customization(body: Document, subject: SignedIn, edge: Edge) -> Customization:
    """Keep a customization (whoever may push to its repositories); a build of each target
    starts at once."""
    return _customization(await edge.hub.customizations.create(subject, body))


@router.post("/prepare", responses=errors(400, 403, 409, 502))
async def prepare_customization(body: Document, subject: SignedIn, edge: Edge) -> list[Any]:
    """What building this customization would do, written nowhere (the review step): per
    target and platform, the base's digest, the package closure with why each is needed and
    what the base already has, the files each artifact adds and the base files it would
    overwrite, the accounts, the files placed, warnings, and the tag the result gets. With
    an `id`, checked as an edit of that customization."""
    return await edge.hub.customizations.prepare(subject, body)


class PackageOffer(BaseModel):
    name: str
    version: str = Field(description="the version a build would install (the archive's newest)")
    section: str


@router.get("/packages", responses=errors(400, 403, 404, 502))
async def search_packages(
    subject: SignedIn,
    edge: Edge,
    repository: Annotated[
        str, Query(max_length=MAX_NAME_LENGTH, pattern=f"^{NAME_PATTERN.pattern}$")
    ],
    tag: Annotated[str, Query(max_length=128, pattern=r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")],
    q: Annotated[str, Query(min_length=1, max_length=100, pattern=r"^[a-z0-9+.-]+$")],
    platform: Annotated[
        str, Query(max_length=64, pattern=r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")
    ] = "linux/amd64",
) -> list[PackageOffer]:
    """Packages of the base's distribution whose names contain `q`, names that start with
    it first (at most 50): what a customization of `repository:tag` can add."""
    found = await edge.hub.customizations.search_packages(subject, repository, tag, platform, q)
    return [PackageOffer(**offer) for offer in found]


@router.get("/{customization_id}", responses=errors(404))
async def get_customization(
    customization_id: CustomizationId, subject: SignedIn, edge: Edge
) -> Customization:
    """A customization (whoever may pull from one of its repositories)."""
    return _customization(await edge.hub.customizations.get(subject, customization_id))


@router.put("/{customization_id}", responses=errors(400, 403, 404, 409))
async def edit_customization(
    customization_id: CustomizationId, body: Document, subject: SignedIn, edge: Edge
) -> Customization:
    """Replace a customization (its creator, or an owner); each target is rebuilt."""
    if body.id is not None and body.id != customization_id:
        raise Invalid(
            f"id: the document is customization {body.id!r}, not {customization_id!r}",
            {"field": "id"},
        )
    row = await edge.hub.customizations.edit(subject, customization_id, body)
    return _customization(row)


@router.delete("/{customization_id}", status_code=204, responses=errors(403, 404))
async def delete_customization(
    customization_id: CustomizationId,
    subject: SignedIn,
    edge: Edge,
    delete_tags: Annotated[bool, Query(description="also delete the tags it built")] = False,
) -> Response:
    """Stop keeping a customization rebuilt; its tags stay unless `delete_tags`."""
    await edge.hub.customizations.delete(subject, customization_id, delete_tags=delete_tags)
    return Response(status_code=204)


@router.post("/{customization_id}/builds", status_code=202, responses=errors(403, 404))
async def rebuild(customization_id: CustomizationId, subject: SignedIn, edge: Edge) -> Queued:
    """Build each target now (its creator, or an owner)."""
    return Queued(builds=await edge.hub.customizations.rebuild(subject, customization_id))


@router.get("/{customization_id}/builds", responses=errors(404))
async def list_builds(
    customization_id: CustomizationId,
    request: Request,
    response: Response,
    subject: SignedIn,
    edge: Edge,
    paging: Paging,
) -> Page[Build]:
    """A customization's builds, newest first: trigger, status, what changed."""
    rows = await edge.hub.customizations.builds(
        subject, customization_id, before_id=paging.after_id(), limit=paging.limit + 1
    )
    return page_of(request, response, paging, [_build(r) for r in rows], lambda b: b.id)


@router.get("/{customization_id}/builds/{build_id}", responses=errors(404))
async def get_build(
    customization_id: CustomizationId, build_id: BuildId, subject: SignedIn, edge: Edge
) -> Build:
    """One build: its trigger, status, lock of inputs and changes."""
    row, _ = await edge.hub.customizations.build(subject, customization_id, build_id)
    return _build(row)


@router.get(
    "/{customization_id}/builds/{build_id}/log",
    response_class=Response,
    responses={
        200: {"description": "the log", "content": {"text/plain": {"schema": {"type": "string"}}}},
        **errors(404),
    },
)
async def get_build_log(
    customization_id: CustomizationId, build_id: BuildId, subject: SignedIn, edge: Edge
) -> Response:
    """A build's log, as text."""
    _, log = await edge.hub.customizations.build(subject, customization_id, build_id)
    return PlainTextResponse(log)
