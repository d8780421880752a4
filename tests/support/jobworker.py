"""A job worker in its own OS process, for tests of several processes sharing one database.

    python tests/support/jobworker.py DATABASE_URL LOG --owner NAME [--lease S] [--sleep S]

It runs `work` jobs until SIGTERM. Each event is one line appended to LOG with a single
O_APPEND write (so lines from several processes never interleave):
`ready <owner>` once it polls, `start <job> <owner> <attempt>` and `done <job> <owner> <attempt>`
around each run. A job whose payload has `"hang_on_attempt": n` sleeps for an hour on its
n-th attempt, so a test can kill the process mid-job.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

from dockyard.hub.jobs import Job, JobContext, JobQueue, Worker
from dockyard.metadata.db import Database


def append(log: str, line: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


async def main(args: argparse.Namespace) -> None:
    db = Database(args.url)
    queue = JobQueue(db, lease_seconds=args.lease)

    async def work(job: Job, context: JobContext) -> None:
        append(args.log, f"start {job.id} {args.owner} {job.attempts}")
        if job.payload.get("hang_on_attempt") == job.attempts:
            await asyncio.sleep(3600)
        await asyncio.sleep(args.sleep)
        append(args.log, f"done {job.id} {args.owner} {job.attempts}")

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    worker = Worker(
        queue, {"work": work}, owner=args.owner, concurrency=args.concurrency, poll_seconds=0.05
    )
    append(args.log, f"ready {args.owner}")
    try:
        await worker.run(stop)
    finally:
        await db.close()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("log")
    parser.add_argument("--owner", required=True)
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=4)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
