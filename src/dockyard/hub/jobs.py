"""Background jobs: a queue of leased rows in the database and the worker that runs them.

Mirror syncs and webhook deliveries are job rows, so they survive restarts and run on any
node. A worker claims a job under a lease it renews while the handler runs; if it dies, the
lease runs out and another worker claims the job again. Two workers never hold the same
lease, and one whose lease is gone can no longer settle the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.client.retry import RetryPolicy
from dockyard.metadata import jobs as sql
from dockyard.metadata.db import Database
from dockyard.metadata.jobs import JobRow

log = logging.getLogger("dockyard.hub.jobs")

__all__ = ["RETRY_POLICY", "Handler", "Job", "JobContext", "JobQueue", "JobRow", "Retry", "Worker"]


@dataclass(frozen=True, slots=True)
class Job:
    """What a handler gets: the job as claimed (`attempts` counts this one)."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    dedupe_key: str | None


class Retry(Exception):
    """Raised by a handler: try again after `delay` seconds (counts as an attempt)."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


RETRY_POLICY = RetryPolicy(base=2.0, cap=600.0, max_retry_after=3600.0)
"""How long a failed job waits: the shared backoff (full jitter spreads apart the retries of
jobs that failed together, say in an upstream outage), or what the handler was asked to wait,
at most an hour (a receiver may ask for a pause, not for weeks of silence). A job's own
`max_attempts` bounds the tries, not the policy's `attempts`."""


class JobQueue:
    """Jobs in the database: enqueue, claim under a lease, settle, and look them up."""

    def __init__(
        self,
        db: Database,
        *,
        lease_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.lease_seconds = lease_seconds
        self.clock = clock

    async def enqueue(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        dedupe_key: str | None = None,
        run_after: float | None = None,
        max_attempts: int = 5,
        conn: AsyncConnection | None = None,
    ) -> int:
        """Queue a job and return its id; while a queued or running job holds `dedupe_key`,
        return that job's id instead. With `conn`, join the caller's (write) transaction."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        now = self.clock()
        options: dict[str, Any] = {
            "dedupe_key": dedupe_key,
            "run_after": now if run_after is None else run_after,
            "max_attempts": max_attempts,
            "now": now,
        }
        if conn is not None:
            return await sql.insert(self.db, conn, kind, payload, **options)
        async with self.db.write() as own:
            return await sql.insert(self.db, own, kind, payload, **options)

    async def claim(self, owner: str, kinds: Collection[str] | None = None) -> Job | None:
        """Lease the oldest due job (of `kinds`) to `owner`, counting an attempt; None if none."""
        async with self.db.write() as conn:
            row = await sql.claim(
                self.db,
                conn,
                owner,
                kinds,
                now=self.clock(),
                lease_seconds=self.lease_seconds,
            )
        if row is None:
            return None
        return Job(row.id, row.kind, row.payload, row.attempts, row.max_attempts, row.dedupe_key)

    async def heartbeat(self, job_id: int, owner: str) -> bool:
        """Extend the lease; False when it is no longer `owner`'s (taken over or cancelled)."""
        async with self.db.write() as conn:
            return await sql.heartbeat(
                conn, job_id, owner, now=self.clock(), lease_seconds=self.lease_seconds
            )

    async def report(self, job_id: int, owner: str, progress: Mapping[str, Any]) -> None:
        """Store the handler's progress (ignored once the lease is no longer `owner`'s)."""
        async with self.db.write() as conn:
            await sql.report(conn, job_id, owner, progress, now=self.clock())

    async def succeed(self, job_id: int, owner: str) -> bool:
        """Mark the job succeeded and free its dedupe key; False if the lease was not ours."""
        async with self.db.write() as conn:
            return await sql.succeed(conn, job_id, owner, now=self.clock())

    async def fail(self, job_id: int, owner: str, error: str, retry_in: float | None) -> bool:
        """Queue the job again in `retry_in` seconds, or fail it for good when that is None or
        its attempts are spent; False if the lease was not ours."""
        now = self.clock()
        retry_at = None if retry_in is None else now + retry_in
        async with self.db.write() as conn:
            return await sql.fail(conn, job_id, owner, error, retry_at=retry_at, now=now)

    async def get(self, job_id: int) -> JobRow | None:
        async with self.db.read() as conn:
            return await sql.get(conn, job_id)

    async def list(
        self,
        *,
        state: str | None = None,
        kind: str | None = None,
        after_id: int | None = None,
        limit: int = 50,
    ) -> list[JobRow]:
        """Jobs newest first; `after_id` pages backwards (ids below it)."""
        async with self.db.read() as conn:
            return await sql.listing(conn, state=state, kind=kind, after_id=after_id, limit=limit)

    async def cancel(self, job_id: int) -> bool:
        """Cancel a queued or running job (a running one stops at its worker's next heartbeat)."""
        async with self.db.write() as conn:
            return await sql.cancel(conn, job_id, now=self.clock())

    async def retry_now(self, job_id: int) -> bool:
        """Queue a failed or cancelled job again with its attempts reset (e.g. "redeliver")."""
        async with self.db.write() as conn:
            return await sql.retry_now(conn, job_id, now=self.clock())


class JobContext:
    """What a running handler may do besides its work: report progress under its lease.

    `owner` is the lease the job runs under: the worker's owner and a claim number,
    `host:pid:random#n`.
    """

    def __init__(self, queue: JobQueue, job_id: int, owner: str) -> None:
        self.queue = queue
        self.job_id = job_id
        self.owner = owner

    async def report(self, progress: Mapping[str, Any]) -> None:
        """Store `progress` (JSON) on the job, for people watching it."""
        await self.queue.report(self.job_id, self.owner, progress)


Handler = Callable[[Job, JobContext], Awaitable[None]]


def default_owner() -> str:
    """`host:pid:random`, unique to this worker and readable in the jobs table."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{secrets.token_hex(4)}"


class Worker:
    """Runs the handled kinds of jobs, up to `concurrency` at once, until told to stop."""

    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, Handler],
        *,
        owner: str | None = None,
        concurrency: int = 4,
        poll_seconds: float = 1.0,
    ) -> None:
        self.queue = queue
        self.handlers = dict(handlers)
        self.owner = owner or default_owner()
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self._wakeup = asyncio.Event()
        self._running: dict[asyncio.Task[None], int] = {}
        # Each claim is its own lease (owner#n): if a job is cancelled, queued again and claimed
        # by this same worker, the old run's lease is refused, not mistaken for the new one.
        self._leases = itertools.count(1)

    def wake(self) -> None:
        """Poll at once (after an enqueue in this process) instead of at the next interval."""
        self._wakeup.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run jobs until `stop` is set; then cancel the running handlers and return,
        leaving their rows to be claimed again when their leases run out."""
        try:
            while not stop.is_set():
                await self._fill(stop)
                await self._pause(stop)
        finally:
            tasks = list(self._running)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _fill(self, stop: asyncio.Event) -> None:
        """Claim jobs while there is a free slot and work is due."""
        while len(self._running) < self.concurrency and not stop.is_set():
            lease = f"{self.owner}#{next(self._leases)}"
            try:
                job = await self.queue.claim(lease, self.handlers)
            except Exception:
                # The database may be briefly unreachable; the next poll tries again.
                log.exception("claiming a job failed")
                return
            if job is None:
                return
            task = asyncio.create_task(self._run_job(job, lease), name=f"job-{job.id}")
            self._running[task] = job.id
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        # A free slot: look for more work now rather than at the next poll.
        self._wakeup.set()

    async def _pause(self, stop: asyncio.Event) -> None:
        """Wait for `poll_seconds`, a wake-up or `stop`, whichever comes first."""
        waiters = [asyncio.ensure_future(self._wakeup.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(
                waiters, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
        self._wakeup.clear()

    async def _run_job(self, job: Job, lease: str) -> None:
        """Run the handler while holding the lease, then record its outcome."""
        work = asyncio.create_task(self._call(job, lease), name=f"job-{job.id}-handler")
        try:
            held = await self._hold_lease(job, lease, work)
        finally:
            if not work.done():
                work.cancel()
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await work
        if held:
            await self._settle(job, lease, work)

    async def _call(self, job: Job, lease: str) -> None:
        await self.handlers[job.kind](job, JobContext(self.queue, job.id, lease))

    async def _hold_lease(self, job: Job, lease: str, work: asyncio.Task[None]) -> bool:
        """Renew the lease until `work` ends; False (with `work` cancelled) once it is lost."""
        interval = self.queue.lease_seconds / 3
        deadline = self.queue.clock() + self.queue.lease_seconds
        while True:
            done, _ = await asyncio.wait({work}, timeout=interval)
            if done:
                return True
            try:
                ours = await self.queue.heartbeat(job.id, lease)
            except Exception:
                log.warning("renewing the lease of job %d failed", job.id, exc_info=True)
                # Keep running while the last lease we got still holds.
                ours = self.queue.clock() < deadline
            else:
                deadline = self.queue.clock() + self.queue.lease_seconds
            if not ours:
                log.info("job %d: lease lost or job cancelled; stopping its handler", job.id)
                work.cancel()
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await work
                return False

    async def _settle(self, job: Job, lease: str, work: asyncio.Task[None]) -> None:
        """Record the handler's outcome: success, a retry, or (attempts spent) failure."""
        try:
            error = work.exception() if not work.cancelled() else asyncio.CancelledError()
            if error is None:
                settled = await self.queue.succeed(job.id, lease)
            elif isinstance(error, Retry):
                delay = RETRY_POLICY.delay(job.attempts, error.delay)
                settled = await self.queue.fail(job.id, lease, str(error), delay)
            else:
                log.error(
                    "job %d (%s) failed on attempt %d of %d",
                    job.id,
                    job.kind,
                    job.attempts,
                    job.max_attempts,
                    exc_info=error,
                )
                message = f"{type(error).__name__}: {error}"
                delay = RETRY_POLICY.delay(job.attempts)
                settled = await self.queue.fail(job.id, lease, message, delay)
        except Exception:
            # The lease runs out and another attempt follows; nothing is lost.
            log.exception("recording the outcome of job %d failed", job.id)
            return
        if not settled:
            log.info("job %d: lease lost before its outcome was recorded", job.id)
