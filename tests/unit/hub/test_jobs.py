"""The job queue and worker, on SQLite and on PostgreSQL: leases, dedupe, retries, cancel,
and two workers draining one database with every job run exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest

from dockyard.hub.jobs import RETRY_POLICY, Job, JobContext, JobQueue, Retry, Worker
from dockyard.metadata.db import Database


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(db: Database, clock: Clock) -> JobQueue:
    return JobQueue(db, clock=clock)


T = TypeVar("T")


def must(value: T | None) -> T:
    assert value is not None
    return value


async def wait_for(check: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def state_of(queue: JobQueue, job_id: int) -> str:
    row = must(await queue.get(job_id))
    return row.state


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


# --- the queue -------------------------------------------------------------------------------


async def test_enqueue_claim_succeed(queue: JobQueue, clock: Clock) -> None:
    job_id = await queue.enqueue("sync", {"mirror": 3})
    row = must(await queue.get(job_id))
    assert (row.state, row.attempts, row.payload) == (
        "queued",
        0,
        {"mirror": 3},
    )

    job = await queue.claim("a")
    assert job == Job(job_id, "sync", {"mirror": 3}, 1, 5, None)
    row = must(await queue.get(job_id))
    assert (row.state, row.lease_owner, row.lease_expires_at) == ("running", "a", clock.now + 30)
    assert await queue.claim("b") is None

    assert await queue.succeed(job_id, "a")
    row = must(await queue.get(job_id))
    assert (row.state, row.finished_at, row.lease_expires_at) == ("succeeded", clock.now, None)
    assert await queue.claim("b") is None
    assert await queue.get(job_id + 100) is None


async def test_claim_takes_the_oldest_due_job_of_the_given_kinds(
    queue: JobQueue, clock: Clock
) -> None:
    later = await queue.enqueue("sync", {}, run_after=clock.now + 60)
    first = await queue.enqueue("deliver", {})
    second = await queue.enqueue("sync", {})
    assert await queue.claim("a", kinds=[]) is None
    job = must(await queue.claim("a", kinds=["sync"]))
    assert job.id == second
    job = must(await queue.claim("a"))
    assert job.id == first
    assert await queue.claim("a") is None
    clock.advance(60)
    job = must(await queue.claim("a"))
    assert job.id == later


async def test_dedupe_while_queued_or_running_reruns_then_ends(queue: JobQueue) -> None:
    first = await queue.enqueue("sync", {"n": 1}, dedupe_key="sync:1")
    assert await queue.enqueue("sync", {"n": 2}, dedupe_key="sync:1") == first
    assert await queue.claim("a") is not None
    assert await queue.enqueue("sync", {"n": 3}, dedupe_key="sync:1") == first
    assert len(await queue.list()) == 1

    # asked for while it ran: it runs once more, then ends
    assert await queue.succeed(first, "a")
    again = must(await queue.get(first))
    assert (again.state, again.attempts, again.dedupe_key) == ("queued", 0, "sync:1")
    assert must(await queue.claim("a")).id == first
    assert await queue.succeed(first, "a")
    assert await state_of(queue, first) == "succeeded"
    second = await queue.enqueue("sync", {"n": 4}, dedupe_key="sync:1")
    assert second != first
    assert await queue.cancel(second)
    third = await queue.enqueue("sync", {}, dedupe_key="sync:1")
    assert third not in (first, second)
    assert await queue.claim("a") is not None
    assert await queue.fail(third, "a", "boom", retry_in=None)
    assert await queue.enqueue("sync", {}, dedupe_key="sync:1") not in (first, second, third)
    assert await queue.enqueue("sync", {}, dedupe_key="sync:2") != first


async def test_enqueue_joins_the_callers_transaction(db: Database, queue: JobQueue) -> None:
    async def create_mirror() -> None:
        async with db.write() as conn:
            await queue.enqueue("sync", {}, dedupe_key="sync:1", conn=conn)
            raise RuntimeError("the mirror could not be created")

    with pytest.raises(RuntimeError):
        await create_mirror()
    assert await queue.list() == []
    async with db.write() as conn:
        job_id = await queue.enqueue("sync", {}, dedupe_key="sync:1", conn=conn)
        assert await queue.enqueue("sync", {}, dedupe_key="sync:1", conn=conn) == job_id
    assert [row.id for row in await queue.list()] == [job_id]


async def test_expired_lease_goes_to_another_owner_and_the_first_is_refused(
    queue: JobQueue, clock: Clock
) -> None:
    job_id = await queue.enqueue("sync", {})
    assert await queue.claim("a") is not None
    clock.advance(25)
    assert await queue.heartbeat(job_id, "a")
    clock.advance(25)
    assert await queue.claim("b") is None, "the heartbeat extended the lease"

    clock.advance(10)
    job = must(await queue.claim("b"))
    assert (job.id, job.attempts) == (job_id, 2)
    assert not await queue.heartbeat(job_id, "a")
    assert not await queue.succeed(job_id, "a")
    assert not await queue.fail(job_id, "a", "late", retry_in=1)
    await queue.report(job_id, "a", {"from": "a"})
    await queue.report(job_id, "b", {"done": 7})

    assert await queue.succeed(job_id, "b")
    row = must(await queue.get(job_id))
    assert (row.state, row.lease_owner, row.last_error) == ("succeeded", "b", None)
    assert row.progress == {"done": 7}
    assert not await queue.succeed(job_id, "b"), "an outcome is recorded once"


async def test_retry_with_delay_then_give_up_after_max_attempts(
    queue: JobQueue, clock: Clock
) -> None:
    job_id = await queue.enqueue("sync", {}, max_attempts=3, dedupe_key="k")
    for attempt in (1, 2):
        job = must(await queue.claim("a"))
        assert job.attempts == attempt
        assert await queue.fail(job_id, "a", f"error {attempt}", retry_in=5)
        row = must(await queue.get(job_id))
        assert (row.state, row.run_after, row.last_error) == (
            "queued",
            clock.now + 5,
            f"error {attempt}",
        )
        assert (row.dedupe_key, row.finished_at) == ("k", None)
        assert await queue.claim("a") is None
        clock.advance(5)
    assert await queue.claim("a") is not None
    assert await queue.fail(job_id, "a", "error 3", retry_in=5)
    row = must(await queue.get(job_id))
    assert (row.state, row.attempts, row.last_error) == ("failed", 3, "error 3")
    assert (row.dedupe_key, row.finished_at) == (None, clock.now)
    clock.advance(100)
    assert await queue.claim("a") is None


async def test_fail_without_retry_gives_up_at_once(queue: JobQueue) -> None:
    job_id = await queue.enqueue("sync", {})
    assert await queue.claim("a") is not None
    assert await queue.fail(job_id, "a", "bad config", retry_in=None)
    assert await state_of(queue, job_id) == "failed"


async def test_a_lease_that_runs_out_on_the_last_attempt_fails_the_job(
    queue: JobQueue, clock: Clock
) -> None:
    job_id = await queue.enqueue("sync", {}, max_attempts=2)
    other = await queue.enqueue("sync", {})
    assert await queue.claim("a") is not None
    clock.advance(31)
    job = must(await queue.claim("b"))
    assert (job.id, job.attempts) == (job_id, 2)
    clock.advance(31)
    job = must(await queue.claim("c"))
    assert job.id == other
    row = must(await queue.get(job_id))
    assert row.state == "failed"
    assert row.last_error == "lease expired on attempt 2 of 2"


async def test_cancel_and_retry_now(queue: JobQueue, clock: Clock) -> None:
    queued = await queue.enqueue("deliver", {})
    assert await queue.cancel(queued)
    assert not await queue.cancel(queued)
    assert await queue.claim("a") is None
    assert await queue.retry_now(queued)
    assert not await queue.retry_now(queued), "only failed or cancelled jobs"
    job = must(await queue.claim("a"))
    assert (job.id, job.attempts) == (queued, 1)
    assert await queue.fail(queued, "a", "gone", retry_in=None)
    assert await queue.retry_now(queued)
    row = must(await queue.get(queued))
    assert (row.state, row.attempts, row.finished_at) == ("queued", 0, None)

    job = must(await queue.claim("a"))
    assert await queue.cancel(queued)
    assert not await queue.heartbeat(queued, "a")
    assert not await queue.succeed(queued, "a")
    assert await state_of(queue, queued) == "cancelled"
    # queued again, but not claimable until the old run's lease would have run out
    assert await queue.retry_now(queued)
    assert await queue.claim("b") is None
    clock.advance(30)
    job = must(await queue.claim("b"))
    assert (job.id, job.attempts) == (queued, 1)
    assert await queue.succeed(queued, "b")
    assert not await queue.cancel(queued)
    assert not await queue.retry_now(queued)


async def test_list_newest_first_with_filters_and_pages(queue: JobQueue) -> None:
    ids = [await queue.enqueue("sync" if n % 2 else "deliver", {"n": n}) for n in range(5)]
    assert await queue.claim("a", kinds=["deliver"]) is not None
    assert [row.id for row in await queue.list()] == ids[::-1]
    page = await queue.list(limit=2)
    assert [row.id for row in page] == [ids[4], ids[3]]
    page = await queue.list(limit=2, after_id=page[-1].id)
    assert [row.id for row in page] == [ids[2], ids[1]]
    assert [row.id for row in await queue.list(kind="sync")] == [ids[3], ids[1]]
    assert [row.id for row in await queue.list(state="running")] == [ids[0]]
    assert [row.id for row in await queue.list(state="queued", kind="deliver")] == [ids[4], ids[2]]


def test_jobs_back_off_exponentially_with_full_jitter() -> None:
    for attempt, ceiling in [(1, 2.0), (2, 4.0), (5, 32.0), (20, 600.0), (10_000, 600.0)]:
        delays = [RETRY_POLICY.delay(attempt) for _ in range(200)]
        assert all(0.0 <= delay <= ceiling for delay in delays)
        assert max(delays) > ceiling / 2, "jitter spans the whole range"
    assert RETRY_POLICY.delay(3, 7.0) == 7.0, "a delay asked for wins"
    assert RETRY_POLICY.delay(3, 1e12) == 3600.0, "but a pause, not weeks of silence"


# --- the worker ------------------------------------------------------------------------------


async def test_worker_runs_handlers_and_reports(queue: JobQueue) -> None:
    seen: list[tuple[int, dict[str, object]]] = []

    async def sync(job: Job, context: JobContext) -> None:
        seen.append((job.id, job.payload))
        await context.report({"copied": job.payload["n"]})

    worker = Worker(queue, {"sync": sync}, owner="w", poll_seconds=0.05)
    unknown = await queue.enqueue("rebuild", {})
    ids = [await queue.enqueue("sync", {"n": n}) for n in range(3)]
    async with running(worker):
        worker.wake()
        await wait_for(lambda: _all_in(queue, ids, "succeeded"))
    assert sorted(seen) == [(job_id, {"n": n}) for n, job_id in enumerate(ids)]
    row = must(await queue.get(ids[2]))
    assert row.progress == {"copied": 2}
    assert str(row.lease_owner).startswith("w#")
    row = must(await queue.get(unknown))
    assert (row.state, row.attempts) == ("queued", 0)


async def _all_in(queue: JobQueue, ids: list[int], state: str) -> bool:
    return all([await state_of(queue, job_id) == state for job_id in ids])


async def test_worker_retries_on_retry_and_on_exceptions(
    queue: JobQueue, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    async def flaky(job: Job, context: JobContext) -> None:
        if job.attempts == 1:
            raise Retry("upstream busy", delay=7)

    async def broken(job: Job, context: JobContext) -> None:
        raise ValueError(f"broken on attempt {job.attempts}")

    worker = Worker(queue, {"flaky": flaky, "broken": broken}, poll_seconds=0.02)
    flaky_id = await queue.enqueue("flaky", {})
    broken_id = await queue.enqueue("broken", {}, max_attempts=2)
    with caplog.at_level(logging.ERROR, logger="dockyard.hub.jobs"):
        async with running(worker):
            await wait_for(lambda: _attempted(queue, [flaky_id, broken_id]))
            row = must(await queue.get(flaky_id))
            assert (row.state, row.run_after, row.last_error) == (
                "queued",
                clock.now + 7,
                "upstream busy",
            )
            row = must(await queue.get(broken_id))
            assert row.state == "queued"
            assert clock.now <= row.run_after <= clock.now + 2.0
            clock.advance(10)
            await wait_for(lambda: _all_in(queue, [flaky_id], "succeeded"))
            await wait_for(lambda: _all_in(queue, [broken_id], "failed"))
    row = must(await queue.get(broken_id))
    assert (row.attempts, row.last_error) == (2, "ValueError: broken on attempt 2")
    logged = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], ValueError)]
    assert len(logged) == 2, "each exception is logged with its traceback"


async def _attempted(queue: JobQueue, ids: list[int]) -> bool:
    rows = [await queue.get(job_id) for job_id in ids]
    return all(row is not None and row.state == "queued" and row.attempts == 1 for row in rows)


class Blocking:
    """A handler that waits until cancelled, and says when it started and when it stopped."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def __call__(self, job: Job, context: JobContext) -> None:
        self.started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


async def test_worker_cancels_the_handler_when_its_lease_is_lost(
    db: Database, clock: Clock
) -> None:
    queue = JobQueue(db, lease_seconds=0.3, clock=clock)
    handler = Blocking()
    job_id = await queue.enqueue("sync", {})
    async with running(Worker(queue, {"sync": handler}, poll_seconds=0.02)):
        await asyncio.wait_for(handler.started.wait(), 30)
        # a node whose clock is ahead sees the lease run out; the worker's own heartbeats
        # keep it alive by the worker's clock, so only the takeover can end it
        ahead = JobQueue(db, clock=lambda: clock() + 10)
        thief = must(await ahead.claim("thief"))
        assert thief.id == job_id
        await asyncio.wait_for(handler.cancelled.wait(), 30)
        await asyncio.sleep(0.2)
        row = must(await queue.get(job_id))
        assert (row.state, row.lease_owner, row.last_error) == ("running", "thief", None)
    assert await queue.succeed(job_id, "thief")


async def test_worker_stops_a_cancelled_job_at_its_next_heartbeat(queue: JobQueue) -> None:
    queue.lease_seconds = 0.3
    handler = Blocking()
    job_id = await queue.enqueue("sync", {})
    async with running(Worker(queue, {"sync": handler}, poll_seconds=0.02)):
        await asyncio.wait_for(handler.started.wait(), 30)
        assert await queue.cancel(job_id)
        await asyncio.wait_for(handler.cancelled.wait(), 30)
        await asyncio.sleep(0.2)
    row = must(await queue.get(job_id))
    assert (row.state, row.last_error) == ("cancelled", None)


async def test_stopping_a_worker_leaves_its_jobs_to_be_resumed(
    queue: JobQueue, clock: Clock
) -> None:
    handler = Blocking()
    job_id = await queue.enqueue("sync", {})
    first = Worker(queue, {"sync": handler}, owner="first", poll_seconds=0.02)
    async with running(first):
        await asyncio.wait_for(handler.started.wait(), 30)
    assert handler.cancelled.is_set()
    row = must(await queue.get(job_id))
    assert row.state == "running"
    assert str(row.lease_owner).startswith("first#")

    done: list[int] = []

    async def finish(job: Job, context: JobContext) -> None:
        done.append(job.attempts)

    async with running(Worker(queue, {"sync": finish}, poll_seconds=0.02)):
        await asyncio.sleep(0.1)
        assert done == [], "not before the first lease runs out"
        clock.advance(31)
        await wait_for(lambda: _all_in(queue, [job_id], "succeeded"))
    assert done == [2]


async def test_two_workers_drain_200_jobs_each_run_exactly_once(db_url: str, db: Database) -> None:
    other_db = Database(db_url)
    runs: Counter[int] = Counter()
    owners: Counter[str] = Counter()

    async def handler(job: Job, context: JobContext) -> None:
        runs[job.id] += 1
        owners[context.owner.split("#")[0]] += 1
        await asyncio.sleep(0.002)

    queues = [JobQueue(db, lease_seconds=10), JobQueue(other_db, lease_seconds=10)]
    ids = [await queues[0].enqueue("work", {"n": n}) for n in range(200)]
    workers = [
        Worker(queue, {"work": handler}, owner=f"w{n}", concurrency=4, poll_seconds=0.05)
        for n, queue in enumerate(queues)
    ]
    try:
        async with running(workers[0]), running(workers[1]):
            await wait_for(lambda: _drained(queues[0], 200), seconds=120)
    finally:
        await other_db.close()
    assert runs == Counter(ids)
    assert set(owners) == {"w0", "w1"}, f"both workers took jobs: {owners}"


async def _drained(queue: JobQueue, count: int) -> bool:
    return len(await queue.list(state="succeeded", limit=count + 1)) == count


async def test_a_job_cancelled_and_queued_again_runs_once_more_under_a_new_lease(
    queue: JobQueue, clock: Clock
) -> None:
    queue.lease_seconds = 0.3
    first = Blocking()
    leases: list[str] = []

    async def handler(job: Job, context: JobContext) -> None:
        leases.append(context.owner)
        if len(leases) == 1:
            await first(job, context)

    job_id = await queue.enqueue("sync", {})
    async with running(Worker(queue, {"sync": handler}, owner="w", poll_seconds=0.02)):
        await asyncio.wait_for(first.started.wait(), 30)
        assert await queue.cancel(job_id)
        assert await queue.retry_now(job_id)
        await asyncio.wait_for(first.cancelled.wait(), 30)
        assert await state_of(queue, job_id) == "queued", "not before the old lease runs out"
        clock.advance(1)
        await wait_for(lambda: _all_in(queue, [job_id], "succeeded"))
    assert len(leases) == 2
    assert leases[0] != leases[1]
    assert all(lease.startswith("w#") for lease in leases)
