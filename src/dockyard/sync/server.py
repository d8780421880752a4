"""`dockyard sync server`: run the entries of a sync config on their schedules until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

from dockyard.sync.engine import Log, Syncer
from dockyard.sync.model import SyncConfig, SyncConfigError, SyncEntry
from dockyard.sync.report import SyncReport, describe_error


async def serve(
    syncer: Syncer,
    stop: asyncio.Event,
    *,
    on_report: Callable[[SyncReport], None] | None = None,
    log: Log | None = None,
    clock: Callable[[], float] = time.time,
) -> None:
    """`regsync server`: copy what the targets lack, then run each entry on its schedule
    (an entry still running when it is due again is not started twice), until `stop` is set;
    then cancel what runs (a copy is safe to interrupt: a manifest is only pushed after all
    it names) and return. Entries without a schedule or interval are ignored, as regsync
    ignores them; SyncConfigError when none has one."""
    say = log or (lambda _: None)
    scheduled = _scheduled(syncer.config, say)
    busy: set[int] = set()
    running: set[asyncio.Task[None]] = set()

    async def one_run(indexes: Sequence[int], missing_only: bool) -> None:
        try:
            report = await syncer.run(missing_only=missing_only, entries=indexes)
        except Exception as exc:
            say(f"sync run of entries {list(indexes)} failed: {describe_error(exc)}")
            return
        if on_report is not None:
            on_report(report)

    def start(indexes: list[int], missing_only: bool) -> None:
        busy.update(indexes)
        task = asyncio.create_task(one_run(indexes, missing_only))
        running.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            running.discard(done)
            busy.difference_update(indexes)

        task.add_done_callback(finished)

    now = clock()
    due = {e.index: e.schedule.next_after(now) for e in scheduled if e.schedule is not None}
    schedules = {e.index: e.schedule for e in scheduled if e.schedule is not None}
    start([e.index for e in scheduled], missing_only=True)
    try:
        while not stop.is_set():
            now = clock()
            ready = sorted(i for i, at in due.items() if at is not None and at <= now)
            for index in ready:
                due[index] = schedules[index].next_after(now)
                if index in busy:
                    say(f"sync[{index}] is still running; this turn is skipped")
            startable = [i for i in ready if i not in busy]
            if startable:
                start(startable, missing_only=False)
            upcoming = [at for at in due.values() if at is not None]
            timeout = max(0.0, min(upcoming) - clock()) if upcoming else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout)
    finally:
        for task in list(running):
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


def _scheduled(config: SyncConfig, say: Log) -> list[SyncEntry]:
    """The entries with a schedule (the others are logged); SyncConfigError when none has."""
    scheduled = [e for e in config.sync if e.schedule is not None]
    for entry in config.sync:
        if entry.schedule is None:
            say(f"{entry.describe()}: no schedule or interval, so the server never runs it")
    if not scheduled:
        raise SyncConfigError(
            f"{config.path}: no sync entry has a schedule or an interval, so the server "
            "has nothing to do (use `dockyard sync once` for a single run)"
        )
    return scheduled
