"""/jobs: the background work (mirror syncs, webhook deliveries), for site admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field

from dockyard.api.manage.access import Edge, SignedIn, check, is_site_admin
from dockyard.api.manage.pagination import Page, Paging, page_of
from dockyard.api.manage.routing import GuardedRoute
from dockyard.api.manage.schema import INT32_MAX, errors, optional_timestamp, timestamp
from dockyard.hub.errors import Conflict, NotFound
from dockyard.metadata.jobs import JobRow

router = APIRouter(
    prefix="/jobs", tags=["jobs"], responses=errors(401, 403, 422), route_class=GuardedRoute
)
JobId = Annotated[int, Path(ge=1, le=INT32_MAX)]
State = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobView(BaseModel):
    id: int
    kind: str
    state: State
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    run_after: datetime
    lease_owner: str | None = Field(description="the worker running it")
    lease_expires_at: datetime | None
    last_error: str | None
    progress: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


def _job(row: JobRow) -> JobView:
    return JobView(
        id=row.id,
        kind=row.kind,
        state=row.state,  # type: ignore[arg-type]
        payload=row.payload,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        run_after=timestamp(row.run_after),
        lease_owner=row.lease_owner,
        lease_expires_at=optional_timestamp(row.lease_expires_at),
        last_error=row.last_error,
        progress=row.progress,
        created_at=timestamp(row.created_at),
        updated_at=timestamp(row.updated_at),
        finished_at=optional_timestamp(row.finished_at),
    )


def _admins_only(subject: SignedIn) -> None:
    check(is_site_admin(subject), "only site admins may see and change jobs")


@router.get("")
async def list_jobs(
    request: Request,
    response: Response,
    subject: SignedIn,
    edge: Edge,
    paging: Paging,
    state: State | None = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[JobView]:
    """Jobs, newest first."""
    _admins_only(subject)
    rows = await edge.hub.queue.list(
        state=state, kind=kind, after_id=paging.after_id(), limit=paging.limit + 1
    )
    return page_of(request, response, paging, [_job(r) for r in rows], lambda job: job.id)


async def _get(edge: Edge, job_id: int) -> JobRow:
    row = await edge.hub.queue.get(job_id)
    if row is None:
        raise NotFound(f"there is no job {job_id}", {"id": job_id})
    return row


@router.get("/{job_id}", responses=errors(404))
async def get_job(job_id: JobId, subject: SignedIn, edge: Edge) -> JobView:
    _admins_only(subject)
    return _job(await _get(edge, job_id))


@router.post("/{job_id}/cancel", responses=errors(404, 409))
async def cancel_job(job_id: JobId, subject: SignedIn, edge: Edge) -> JobView:
    """Cancel a queued job; a running one stops at its next lease renewal."""
    _admins_only(subject)
    await _get(edge, job_id)
    if not await edge.hub.queue.cancel(job_id):
        raise Conflict(f"job {job_id} has already ended")
    return _job(await _get(edge, job_id))


@router.post("/{job_id}/retry", responses=errors(404, 409))
async def retry_job(job_id: JobId, subject: SignedIn, edge: Edge) -> JobView:
    """Run a failed or cancelled job again."""
    _admins_only(subject)
    await _get(edge, job_id)
    if not await edge.hub.queue.retry_now(job_id):
        raise Conflict(f"job {job_id} is not failed or cancelled")
    edge.hub.wake()
    return _job(await _get(edge, job_id))
