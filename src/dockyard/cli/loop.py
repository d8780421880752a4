"""The event loop every command runs on: uvloop where it is installed, else asyncio's own.

uvloop's C implementation of the loop's plumbing (futures, thread wake-ups, sockets) took the
server's CPU per 1 MiB push from 10.5 to 8.2 ms with two workers here (`bench/registry.py`).
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on uvloop when it is there.

    What was imported before is frozen out of the garbage collector's sight (`gc.freeze`):
    it lives as long as the process, and a full collection no longer walks it (on a cold
    `sync once`, collections had cost about 5 % of the tool's time).
    """
    gc.freeze()
    if HAVE_UVLOOP:
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
