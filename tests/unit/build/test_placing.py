"""Fetching a closure's packages: all or none, and nothing left running after a failure."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.build.placing import fetch_all


async def test_a_failure_cancels_and_waits_for_the_other_fetches() -> None:
    finished: list[str] = []

    async def slow(name: str) -> str:
        try:
            await asyncio.sleep(10)
            return name
        finally:
            finished.append(name)  # a fetch cleans up its temporary file here

    async def failing() -> str:
        await asyncio.sleep(0)
        raise ValueError("tampered")

    with pytest.raises(ValueError, match="tampered"):
        await fetch_all([slow("a"), failing(), slow("b")])
    assert sorted(finished) == ["a", "b"], "every other fetch ended before the error came"
    assert await fetch_all([asyncio.sleep(0, "x"), asyncio.sleep(0, "y")]) == ["x", "y"]
