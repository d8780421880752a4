"""The hub: one object holding its services, and the background loop that keeps it moving."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from dockyard.hub.catalog import Catalog
from dockyard.hub.customizations import Customizations
from dockyard.hub.jobs import Handler, JobQueue, Worker
from dockyard.hub.mirrors import Mirrors
from dockyard.hub.rebuilds import Rebuilds
from dockyard.hub.webhooks import Webhooks

log = logging.getLogger(__name__)
Tick = Callable[[], Awaitable[int]]


@dataclass
class Hub:
    """Catalog, mirrors, webhooks, customizations and jobs; `handlers` run the jobs by kind;
    `ticks` are the periodic duties (queue due syncs, dispatch events to webhooks) that any
    node may run at once."""

    queue: JobQueue
    catalog: Catalog
    mirrors: Mirrors
    webhooks: Webhooks
    handlers: Mapping[str, Handler]
    customizations: Customizations
    rebuilds: Rebuilds | None = None
    ticks: list[Tick] = field(default_factory=list)
    worker: Worker | None = None

    def wake(self) -> None:
        """Poke this process's worker, if it runs one, to look for jobs now."""
        if self.worker is not None:
            self.worker.wake()

    async def tick(self) -> int:
        """Run every periodic duty once; how many things they set going."""
        started = 0
        for duty in self.ticks:
            try:
                started += await duty()
            except Exception:
                log.exception("a periodic duty failed; it runs again at the next tick")
        return started

    async def run(
        self, stop: asyncio.Event, *, concurrency: int, tick_seconds: float = 1.0
    ) -> None:
        """Run a worker and the periodic duties until `stop` is set."""
        worker = self.worker or Worker(self.queue, self.handlers, concurrency=concurrency)
        self.worker = worker
        ticking = asyncio.create_task(self._ticking(stop, tick_seconds))
        try:
            await worker.run(stop)
        finally:
            ticking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticking

    async def _ticking(self, stop: asyncio.Event, seconds: float) -> None:
        while not stop.is_set():
            if await self.tick():
                self.wake()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds)
