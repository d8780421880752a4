"""Job rows: background work with a lease, so it survives restarts and runs on any node.

A job is `queued` until a worker claims it; it is then `running` under that worker's lease
(`lease_owner`, `lease_expires_at`) until the worker settles it or the lease runs out, when
another worker may claim it again. Every statement that acts for a worker names its lease
owner and the `running` state, so a worker whose lease was taken over (or whose job was
cancelled) can no longer change the row. Times are the caller's clock, in epoch seconds.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, or_, select, update
from sqlalchemy import insert as insert_row
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.metadata.db import Database
from dockyard.metadata.tables import jobs

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)


@dataclass(frozen=True, slots=True)
class JobRow:
    id: int
    kind: str
    payload: dict[str, Any]
    state: str
    dedupe_key: str | None
    attempts: int
    max_attempts: int
    run_after: float
    lease_owner: str | None
    lease_expires_at: float | None
    last_error: str | None
    progress: dict[str, Any] | None
    created_at: float
    updated_at: float
    finished_at: float | None


def _row(row: Any) -> JobRow:
    return JobRow(
        id=row.id,
        kind=row.kind,
        payload=json.loads(row.payload),
        state=row.state,
        dedupe_key=row.dedupe_key,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        run_after=row.run_after,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        last_error=row.last_error,
        progress=json.loads(row.progress) if row.progress is not None else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
    )


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value), separators=(",", ":"))


def _leased(job_id: int, owner: str) -> ColumnElement[bool]:
    return and_(jobs.c.id == job_id, jobs.c.state == RUNNING, jobs.c.lease_owner == owner)


async def insert(
    db: Database,
    conn: AsyncConnection,
    kind: str,
    payload: Mapping[str, Any],
    *,
    dedupe_key: str | None,
    run_after: float,
    max_attempts: int,
    now: float,
) -> int:
    """Add a queued job; return its id, or the live job's holding `dedupe_key` (adding nothing)."""
    values = {
        "kind": kind,
        "payload": _json(payload),
        "state": QUEUED,
        "dedupe_key": dedupe_key,
        "attempts": 0,
        "rerun": False,
        "max_attempts": max_attempts,
        "run_after": run_after,
        "created_at": now,
        "updated_at": now,
    }
    if dedupe_key is None:
        added = await conn.execute(insert_row(jobs).values(**values).returning(jobs.c.id))
        return int(added.scalar_one())
    # ON CONFLICT DO NOTHING rather than catching the unique violation: on PostgreSQL an error
    # would abort the caller's transaction, which may hold other rows (a mirror and its job).
    statement = db.insert_ignore(jobs).values(**values).returning(jobs.c.id)
    # The holder of the key may end (and clear it) between our insert and our look-up.
    for _ in range(10):
        job_id = (await conn.execute(statement)).scalar()
        if job_id is not None:
            return int(job_id)
        holder = select(jobs.c.id, jobs.c.state).where(jobs.c.dedupe_key == dedupe_key)
        found = (await conn.execute(holder)).first()
        if found is not None:
            if found.state == RUNNING:
                # what it runs on may have changed since it started: run once more after it
                await conn.execute(update(jobs).where(jobs.c.id == found.id).values(rerun=True))
            return int(found.id)
    raise RuntimeError(f"could not enqueue a {kind} job with dedupe key {dedupe_key!r}")


async def claim(
    db: Database,
    conn: AsyncConnection,
    owner: str,
    kinds: Collection[str] | None,
    *,
    now: float,
    lease_seconds: float,
) -> JobRow | None:
    """Lease the oldest due job to `owner` and count the attempt; None when nothing is due.

    Due: queued with `run_after` passed, or running under a lease that has run out. A job
    whose lease ran out on its last attempt (its worker died every time) fails instead.
    On PostgreSQL rows other workers are claiming are skipped, not waited for; on SQLite the
    caller's write transaction already keeps other writers out.
    """
    due = or_(
        and_(jobs.c.state == QUEUED, jobs.c.run_after <= now),
        and_(jobs.c.state == RUNNING, jobs.c.lease_expires_at <= now),
    )
    if kinds is not None:
        if not kinds:
            return None
        due = and_(due, jobs.c.kind.in_(list(kinds)))
    query = select(jobs.c.id, jobs.c.state, jobs.c.attempts, jobs.c.max_attempts)
    query = query.where(due).order_by(jobs.c.id).limit(1)
    if not db.is_sqlite:
        query = query.with_for_update(skip_locked=True)
    while (candidate := (await conn.execute(query)).first()) is not None:
        if candidate.state == RUNNING and candidate.attempts >= candidate.max_attempts:
            error = f"lease expired on attempt {candidate.attempts} of {candidate.max_attempts}"
            failed = {**_ended(FAILED, now), "last_error": error}
            await conn.execute(update(jobs).where(jobs.c.id == candidate.id).values(failed))
            continue
        statement = (
            update(jobs)
            .where(jobs.c.id == candidate.id)
            .values(
                state=RUNNING,
                lease_owner=owner,
                lease_expires_at=now + lease_seconds,
                attempts=jobs.c.attempts + 1,
                updated_at=now,
            )
            .returning(*jobs.c)
        )
        return _row((await conn.execute(statement)).one())
    return None


def _ended(state: str, now: float) -> dict[str, Any]:
    """The columns of a job that has ended: its dedupe key is free for a new job."""
    return {
        "state": state,
        "dedupe_key": None,
        "lease_expires_at": None,
        "finished_at": now,
        "updated_at": now,
    }


async def heartbeat(
    conn: AsyncConnection, job_id: int, owner: str, *, now: float, lease_seconds: float
) -> bool:
    """Extend `owner`'s lease; False when the job is no longer running under it."""
    statement = (
        update(jobs)
        .where(_leased(job_id, owner))
        .values(lease_expires_at=now + lease_seconds, updated_at=now)
    )
    return (await conn.execute(statement)).rowcount == 1


async def report(
    conn: AsyncConnection, job_id: int, owner: str, progress: Mapping[str, Any], *, now: float
) -> bool:
    """Store the handler's progress; False when the job is no longer running under `owner`."""
    statement = (
        update(jobs).where(_leased(job_id, owner)).values(progress=_json(progress), updated_at=now)
    )
    return (await conn.execute(statement)).rowcount == 1


async def succeed(conn: AsyncConnection, job_id: int, owner: str, *, now: float) -> bool:
    """Mark the job succeeded, or queue it again at once if it was asked for while it ran;
    False when it is no longer running under `owner`."""
    again = {
        "state": QUEUED,
        "rerun": False,
        "attempts": 0,
        "run_after": now,
        "lease_owner": None,
        "lease_expires_at": None,
        "updated_at": now,
    }
    statement = update(jobs).where(_leased(job_id, owner), jobs.c.rerun.is_(True)).values(again)
    if (await conn.execute(statement)).rowcount == 1:
        return True
    statement = update(jobs).where(_leased(job_id, owner)).values(_ended(SUCCEEDED, now))
    return (await conn.execute(statement)).rowcount == 1


async def fail(
    conn: AsyncConnection,
    job_id: int,
    owner: str,
    error: str,
    *,
    retry_at: float | None,
    now: float,
) -> bool:
    """Queue the job again at `retry_at`, or fail it for good when that is None or its attempts
    are spent; False when it is no longer running under `owner`."""
    values: dict[str, Any]
    if retry_at is None:
        values = _ended(FAILED, now)
    else:
        # Decided on the row's own attempts within the one statement, so nothing moves between.
        spent = jobs.c.attempts >= jobs.c.max_attempts
        values = {
            "state": case((spent, FAILED), else_=QUEUED),
            "dedupe_key": case((spent, None), else_=jobs.c.dedupe_key),
            "run_after": case((spent, jobs.c.run_after), else_=retry_at),
            "finished_at": case((spent, now), else_=None),
            "lease_expires_at": None,
            "updated_at": now,
        }
    statement = update(jobs).where(_leased(job_id, owner)).values({**values, "last_error": error})
    return (await conn.execute(statement)).rowcount == 1


async def cancel(conn: AsyncConnection, job_id: int, *, now: float) -> bool:
    """Cancel a queued or running job; its worker finds out at its next heartbeat."""
    # The lease stays recorded so `retry_now` can wait it out while the old run winds down.
    statement = (
        update(jobs)
        .where(and_(jobs.c.id == job_id, jobs.c.state.in_([QUEUED, RUNNING])))
        .values(state=CANCELLED, dedupe_key=None, finished_at=now, updated_at=now)
    )
    return (await conn.execute(statement)).rowcount == 1


async def retry_now(conn: AsyncConnection, job_id: int, *, now: float) -> bool:
    """Queue a failed or cancelled job again with its attempts reset."""
    # A job cancelled while running may still run until its worker's next heartbeat: not
    # before its last lease runs out, so two runs never overlap.
    not_before = case(
        (jobs.c.lease_expires_at > now, jobs.c.lease_expires_at),
        else_=now,
    )
    statement = (
        update(jobs)
        .where(and_(jobs.c.id == job_id, jobs.c.state.in_([FAILED, CANCELLED])))
        .values(
            state=QUEUED,
            attempts=0,
            run_after=not_before,
            lease_owner=None,
            lease_expires_at=None,
            finished_at=None,
            updated_at=now,
        )
    )
    return (await conn.execute(statement)).rowcount == 1


async def get(conn: AsyncConnection, job_id: int) -> JobRow | None:
    row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()
    return _row(row) if row else None


async def listing(
    conn: AsyncConnection,
    *,
    state: str | None,
    kind: str | None,
    after_id: int | None,
    limit: int,
) -> list[JobRow]:
    """Jobs newest first; `after_id` continues below the last id of the previous page."""
    query = select(jobs).order_by(jobs.c.id.desc()).limit(limit)
    if state is not None:
        query = query.where(jobs.c.state == state)
    if kind is not None:
        query = query.where(jobs.c.kind == kind)
    if after_id is not None:
        query = query.where(jobs.c.id < after_id)
    return [_row(row) for row in await conn.execute(query)]
