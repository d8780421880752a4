"""/mirrors: catalog entries mirrored into organizations, their progress and sync runs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from dockyard.api.manage.access import Edge, SignedIn
from dockyard.api.manage.pagination import Page, Paging, page_of
from dockyard.api.manage.routing import GuardedRoute
from dockyard.api.manage.schema import (
    ACCOUNT_NAME_PATTERN,
    INT32_MAX,
    AccountName,
    errors,
    optional_timestamp,
    timestamp,
)
from dockyard.hub.catalog import ENTRY_NAME
from dockyard.metadata.mirrors import MirrorRow, RunRow
from dockyard.oci.names import MAX_NAME_LENGTH, NAME_PATTERN

router = APIRouter(
    prefix="/mirrors", tags=["mirrors"], responses=errors(401, 422), route_class=GuardedRoute
)
MirrorId = Annotated[int, Path(ge=1, le=INT32_MAX)]


class MirrorCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entry: Annotated[str, Field(max_length=100, pattern=f"^{ENTRY_NAME.pattern}$")]
    org: AccountName
    repository: (
        Annotated[str, Field(max_length=MAX_NAME_LENGTH, pattern=f"^{NAME_PATTERN.pattern}$")]
        | None
    ) = Field(None, description="ORG/NAME; default ORG/dhi-ENTRY")
    include_eol: bool = Field(False, description="also mirror end-of-life tags (ELS)")
    interval_seconds: Annotated[float, Field(ge=60, le=7 * 86400)] | None = Field(
        None, description="how often to sync; default the site's"
    )


class MirrorPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_eol: bool | None = None


class Mirror(BaseModel):
    id: int
    entry: str
    repository: str
    status: str = Field(description="active, paused (the repository is public) or stopped")
    status_reason: str | None
    include_eol: bool
    created_by: str
    created_at: datetime
    interval_seconds: float | None
    last_synced_at: datetime | None
    next_sync_at: datetime | None
    tags_total: int = Field(description="tags the current or last sync copies")
    tags_done: int
    bytes_done: int


class SyncRun(BaseModel):
    id: int
    trigger: str = Field(description="create, schedule, webhook or manual")
    outcome: str = Field(description="running, succeeded, failed or skipped")
    started_at: datetime
    finished_at: datetime | None
    tags_added: int
    tags_updated: int
    tags_unchanged: int
    referrers_copied: int
    bytes: int
    error: str | None


class Queued(BaseModel):
    job_id: int


def _mirror(row: MirrorRow) -> Mirror:
    return Mirror(
        id=row.id,
        entry=row.entry,
        repository=row.repository,
        status=row.status,
        status_reason=row.status_reason,
        include_eol=row.include_eol,
        created_by=row.created_by,
        created_at=timestamp(row.created_at),
        interval_seconds=row.interval_seconds,
        last_synced_at=optional_timestamp(row.last_synced_at),
        next_sync_at=optional_timestamp(row.next_sync_at),
        tags_total=row.tags_total,
        tags_done=row.tags_done,
        bytes_done=row.bytes_done,
    )


def _run(row: RunRow) -> SyncRun:
    return SyncRun(
        id=row.id,
        trigger=row.trigger,
        outcome=row.outcome,
        started_at=timestamp(row.started_at),
        finished_at=optional_timestamp(row.finished_at),
        tags_added=row.tags_added,
        tags_updated=row.tags_updated,
        tags_unchanged=row.tags_unchanged,
        referrers_copied=row.referrers_copied,
        bytes=row.bytes,
        error=row.error,
    )


@router.get("", responses=errors(404))
async def list_mirrors(
    request: Request,
    response: Response,
    subject: SignedIn,
    edge: Edge,
    paging: Paging,
    org: Annotated[str | None, Query(max_length=255, pattern=ACCOUNT_NAME_PATTERN)] = None,
    entry: Annotated[str | None, Query(max_length=100, pattern=f"^{ENTRY_NAME.pattern}$")] = None,
) -> Page[Mirror]:
    """Mirrors whose repositories the caller may pull from, oldest first."""
    rows = await edge.hub.mirrors.find(
        subject, org=org, entry=entry, after_id=paging.after_id(), limit=paging.limit + 1
    )
    return page_of(request, response, paging, [_mirror(r) for r in rows], lambda m: m.id)


@router.post("", status_code=201, responses=errors(400, 403, 404, 409))
async def create_mirror(body: MirrorCreate, subject: SignedIn, edge: Edge) -> Mirror:
    """Mirror a catalog entry into a new private repository of an organization (its
    owners); the first sync starts at once."""
    row = await edge.hub.mirrors.create(
        subject,
        body.entry,
        body.org,
        repository=body.repository,
        include_eol=body.include_eol,
        interval_seconds=body.interval_seconds,
    )
    return _mirror(row)


@router.get("/{mirror_id}", responses=errors(404))
async def get_mirror(mirror_id: MirrorId, subject: SignedIn, edge: Edge) -> Mirror:
    """A mirror and its progress (whoever may pull from its repository)."""
    return _mirror(await edge.hub.mirrors.get(subject, mirror_id))


@router.patch("/{mirror_id}", responses=errors(403, 404))
async def update_mirror(
    mirror_id: MirrorId, body: MirrorPatch, subject: SignedIn, edge: Edge
) -> Mirror:
    """Turn end-of-life tags on or off (owners); off stops only those tags' updates."""
    if body.include_eol is None:
        return _mirror(await edge.hub.mirrors.get(subject, mirror_id))
    return _mirror(await edge.hub.mirrors.set_include_eol(subject, mirror_id, body.include_eol))


@router.post("/{mirror_id}/stop", responses=errors(403, 404))
async def stop_mirror(mirror_id: MirrorId, subject: SignedIn, edge: Edge) -> Mirror:
    """Stop mirroring (owners): the repository and its images stay, nothing more arrives."""
    return _mirror(await edge.hub.mirrors.stop(subject, mirror_id))


@router.post("/{mirror_id}/sync", status_code=202, responses=errors(403, 404, 409))
async def sync_mirror(mirror_id: MirrorId, subject: SignedIn, edge: Edge) -> Queued:
    """Sync now rather than at the next interval (owners)."""
    return Queued(job_id=await edge.hub.mirrors.sync_now(subject, mirror_id))


@router.get("/{mirror_id}/runs", responses=errors(404))
async def list_sync_runs(
    mirror_id: MirrorId,
    request: Request,
    response: Response,
    subject: SignedIn,
    edge: Edge,
    paging: Paging,
) -> Page[SyncRun]:
    """The mirror's sync runs, newest first, with outcome and counts."""
    rows = await edge.hub.mirrors.runs(subject, mirror_id, paging.after_id(), paging.limit + 1)
    return page_of(request, response, paging, [_run(r) for r in rows], lambda run: run.id)
