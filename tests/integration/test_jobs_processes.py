"""Job workers in separate OS processes sharing one SQLite file or one PostgreSQL database:
every job runs exactly once, and a job whose process is killed with SIGKILL is finished by
another process once the lease runs out."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import pytest_asyncio

from dockyard.hub.jobs import JobQueue
from dockyard.metadata.db import Database

SCRIPT = Path(__file__).parents[1] / "support" / "jobworker.py"


@pytest_asyncio.fixture
async def queue(db_url: str) -> AsyncIterator[JobQueue]:
    db = Database(db_url)
    await db.migrate()
    yield JobQueue(db)
    await db.close()


class Workers:
    """Worker processes started by a test, all ended when it ends."""

    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, owner: str, *options: str) -> subprocess.Popen[bytes]:
        argv = [sys.executable, str(SCRIPT), self.url, str(self.log), "--owner", owner, *options]
        process = subprocess.Popen(argv)
        self.processes[owner] = process
        return process

    def lines(self, event: str) -> list[list[str]]:
        text = self.log.read_text() if self.log.exists() else ""
        return [line.split()[1:] for line in text.splitlines() if line.split()[0] == event]

    async def wait_for_line(self, event: str, *fields: str) -> None:
        async def seen() -> bool:
            return any(line[: len(fields)] == list(fields) for line in self.lines(event))

        await poll(seen, 60, f"{event} {' '.join(fields)} in {self.log}")

    def stop(self, owner: str) -> None:
        process = self.processes[owner]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0

    def end_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


@pytest.fixture
def workers(db_url: str, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(db_url, tmp_path / "events.log")
    try:
        yield started
    finally:
        started.end_all()


T = TypeVar("T")


def must(value: T | None) -> T:
    assert value is not None
    return value


async def poll(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_two_processes_run_each_job_exactly_once(queue: JobQueue, workers: Workers) -> None:
    for owner in ("one", "two"):
        workers.start(owner, "--sleep", "0.005")
    for owner in ("one", "two"):
        await workers.wait_for_line("ready", owner)
    ids = [await queue.enqueue("work", {"n": n}) for n in range(200)]

    async def drained() -> bool:
        return len(await queue.list(state="succeeded", limit=201)) == 200

    await poll(drained, 120, "200 succeeded jobs")
    workers.stop("one")
    workers.stop("two")

    done = workers.lines("done")
    assert Counter(int(job_id) for job_id, _, _ in done) == Counter(ids)
    assert Counter(job_id for job_id, _, _ in workers.lines("start")) == Counter(
        job_id for job_id, _, _ in done
    ), "no job started twice"
    by_owner = Counter(owner for _, owner, _ in done)
    assert set(by_owner) == {"one", "two"}, f"both processes took jobs: {by_owner}"


async def test_a_job_of_a_killed_process_is_finished_by_another(
    queue: JobQueue, workers: Workers
) -> None:
    first = workers.start("first", "--lease", "1")
    await workers.wait_for_line("ready", "first")
    job_id = await queue.enqueue("work", {"hang_on_attempt": 1})
    await workers.wait_for_line("start", str(job_id), "first", "1")
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=30) == -signal.SIGKILL

    row = must(await queue.get(job_id))
    assert row.state == "running"
    assert str(row.lease_owner).startswith("first#")

    workers.start("second", "--lease", "1")
    await workers.wait_for_line("done", str(job_id), "second", "2")

    async def settled() -> bool:
        return must(await queue.get(job_id)).state != "running"

    await poll(settled, 60, f"job {job_id} settled")
    row = must(await queue.get(job_id))
    assert (row.state, row.attempts) == ("succeeded", 2)
    assert str(row.lease_owner).startswith("second#")
    workers.stop("second")
    assert workers.lines("start") == [[str(job_id), "first", "1"], [str(job_id), "second", "2"]]
    assert workers.lines("done") == [[str(job_id), "second", "2"]]
