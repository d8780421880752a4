"""The event loop every command runs on: uvloop where it is installed, else asyncio's own.

uvloop's C implementation of the loop's plumbing (futures, thread wake-ups, sockets) cuts the
server's CPU per 1 MiB push by about a quarter on this machine kind (`bench/registry.py`).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on uvloop when it is there."""
    if HAVE_UVLOOP:
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
