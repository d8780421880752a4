"""Single flight: concurrent callers asking for the same thing share one task doing it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Hashable
from typing import Any


class Flights:
    """One running task per key. Callers that arrive while it runs wait for the same task; a
    caller that goes away (a client that disconnects) does not stop it for the others."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Task[None]] = {}

    def __len__(self) -> int:
        return len(self._running)

    async def run(self, key: Hashable, start: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Wait for the task of `key`, started with `start()` unless one is running; its
        exception is raised to every caller."""
        task = self._running.get(key)
        if task is None:
            task = asyncio.create_task(start())
            self._running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        await asyncio.shield(task)

    def _finished(self, key: Hashable, task: asyncio.Task[None]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved here: the callers that waited were given it

    async def close(self) -> None:
        """Cancel every running task and wait until they ended."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
