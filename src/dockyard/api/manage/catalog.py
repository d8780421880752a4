"""/catalog: the upstream repositories a site offers for mirroring, and the URL upstream
notifies when it pushes (a Docker Hub-style webhook)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from dockyard.api.manage.access import Edge, SignedIn
from dockyard.api.manage.pagination import Page, Paging, page_of
from dockyard.api.manage.schema import Label, errors, timestamp
from dockyard.hub.catalog import ENTRY_NAME, group_by_variant
from dockyard.metadata.catalog import EntryRow

router = APIRouter(prefix="/catalog", tags=["catalog"], responses=errors(422))

Tls = Literal["enabled", "insecure", "disabled"]
EntryName = Annotated[
    str,
    Path(max_length=100, pattern=f"^{ENTRY_NAME.pattern}$", examples=["python"]),
]
Source = Annotated[str, Field(min_length=1, max_length=512, examples=["dhi.io/python"])]
Secret = Annotated[str, Field(min_length=1, max_length=4096)]


class CatalogEntryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(max_length=100, pattern=f"^{ENTRY_NAME.pattern}$")]
    kind: Literal["image", "chart"] = "image"
    description: Annotated[str, Field(max_length=2000)] = ""
    source: Source
    source_tls: Tls = "enabled"
    username: Label | None = None
    password: Secret | None = None
    attestation_source: Source | None = None
    attestation_tls: Tls | None = None
    attestation_username: Label | None = None
    attestation_password: Secret | None = None
    eol_pattern: Annotated[str, Field(max_length=512)] | None = Field(
        None, description="an anchored regular expression of end-of-life tags"
    )


class CatalogEntryUpdate(BaseModel):
    """The fields to change; a field left out is kept, null removes an optional one (a null
    username removes the password with it). The name and kind cannot change."""

    model_config = ConfigDict(extra="forbid")
    description: Annotated[str, Field(max_length=2000)] | None = None
    source: Source | None = None
    source_tls: Tls | None = None
    username: Label | None = None
    password: Secret | None = None
    attestation_source: Source | None = None
    attestation_tls: Tls | None = None
    attestation_username: Label | None = None
    attestation_password: Secret | None = None
    eol_pattern: Annotated[str, Field(max_length=512)] | None = None


class CatalogEntry(BaseModel):
    name: str
    kind: str
    description: str
    source: str
    source_tls: str
    attestation_source: str | None
    attestation_tls: str | None
    eol_pattern: str | None
    has_credentials: bool
    created_at: datetime


class CatalogEntryCreated(CatalogEntry):
    hook_url: str = Field(
        description="POST here (a Docker Hub-style webhook) when upstream pushes; shown once"
    )


class CatalogTag(BaseModel):
    tag: str
    digest: str
    eol: bool = Field(description="end of life: mirrored only with the ELS option")


class Variant(BaseModel):
    name: str = Field(examples=["standard", "dev", "fips"])
    tags: list[CatalogTag]


class MirroredTo(BaseModel):
    id: int
    repository: str
    status: str


class CatalogEntryDetail(CatalogEntry):
    variants: list[Variant]
    mirrored_to: list[MirroredTo] = Field(
        description="the repositories it is mirrored to that the caller can see"
    )


class Notified(BaseModel):
    queued: int = Field(description="syncs queued, one per mirror of the entry")


def _entry(row: EntryRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "kind": row.kind,
        "description": row.description,
        "source": row.source,
        "source_tls": row.source_tls,
        "attestation_source": row.attestation_source,
        "attestation_tls": row.attestation_tls,
        "eol_pattern": row.eol_pattern,
        "has_credentials": bool(row.username or row.attestation_username),
        "created_at": timestamp(row.created_at),
    }


async def _detail(edge: Edge, subject: SignedIn, row: EntryRow) -> CatalogEntryDetail:
    hub = edge.hub
    groups = group_by_variant(await hub.catalog.tags(row))
    variants = [
        Variant(name=name, tags=[CatalogTag(tag=t.tag, digest=t.digest, eol=t.eol) for t in tags])
        for name, tags in groups.items()
    ]
    mirrors = [
        MirroredTo(id=m.id, repository=m.repository, status=m.status)
        for m in await hub.mirrors.mirrored_to(subject, row)
    ]
    return CatalogEntryDetail(**_entry(row), variants=variants, mirrored_to=mirrors)


@router.get("", responses=errors(401))
async def list_catalog(
    request: Request, response: Response, subject: SignedIn, edge: Edge, paging: Paging
) -> Page[CatalogEntry]:
    """Catalog entries by name (anyone signed in)."""
    rows = await edge.hub.catalog.entries(paging.after_name(), paging.limit + 1)
    found = [CatalogEntry(**_entry(row)) for row in rows]
    return page_of(request, response, paging, found, lambda entry: entry.name)


@router.post("", status_code=201, responses=errors(400, 401, 403, 409))
async def add_catalog_entry(
    body: CatalogEntryCreate, request: Request, subject: SignedIn, edge: Edge
) -> CatalogEntryCreated:
    """Register an upstream repository (site admins)."""
    row, token = await edge.hub.catalog.add(subject, **body.model_dump())
    hook = str(request.url_for("notify_catalog_entry", token=token))
    return CatalogEntryCreated(**_entry(row), hook_url=hook)


@router.get("/{name}", responses=errors(401, 404))
async def get_catalog_entry(name: EntryName, subject: SignedIn, edge: Edge) -> CatalogEntryDetail:
    """An entry, its tags by variant, and where it is mirrored ("View in repository")."""
    return await _detail(edge, subject, await edge.hub.catalog.get(name))


@router.patch("/{name}", responses=errors(400, 401, 403, 404))
async def edit_catalog_entry(
    name: EntryName, body: CatalogEntryUpdate, subject: SignedIn, edge: Edge
) -> CatalogEntryDetail:
    """Change an entry's source, TLS, credentials, attestations, description or end-of-life
    pattern (site admins); mirrors use the change from their next sync."""
    changes = body.model_dump(exclude_unset=True)
    row = await edge.hub.catalog.edit(subject, name, **changes)
    return await _detail(edge, subject, row)


@router.post("/{name}/refresh", responses=errors(401, 403, 404, 502))
async def refresh_catalog_entry(
    name: EntryName, subject: SignedIn, edge: Edge
) -> CatalogEntryDetail:
    """Read the entry's tags from upstream now (site admins)."""
    row = await edge.hub.catalog.get(name)
    await edge.hub.catalog.refresh_as(subject, row)
    return await _detail(edge, subject, row)


@router.delete(
    "/{name}", status_code=204, response_class=Response, responses=errors(401, 403, 404, 409)
)
async def remove_catalog_entry(name: EntryName, subject: SignedIn, edge: Edge) -> Response:
    """Remove an entry that is mirrored nowhere (site admins)."""
    await edge.hub.catalog.remove(subject, name)
    return Response(status_code=204)


@router.post(
    "/hooks/{token}",
    status_code=202,
    responses=errors(404),
    openapi_extra={"security": [{}]},
)
async def notify_catalog_entry(
    token: Annotated[str, Path(min_length=1, max_length=128)],
    edge: Edge,
    payload: Annotated[dict[str, Any] | None, Body()] = None,
) -> Notified:
    """Upstream pushed: sync every mirror of the entry now. The secret URL is the credential;
    the body (Docker Hub's webhook payload) is accepted and not needed."""
    entry = await edge.hub.catalog.entry_for_hook(token)
    return Notified(queued=len(await edge.hub.mirrors.notify(entry)))
