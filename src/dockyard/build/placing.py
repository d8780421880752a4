"""Putting a package's files over a base as a package manager writing through the base's
filesystem would: folders followed through the base's symlinks (a merged-/usr base has
/bin → usr/bin), and folders the base already has left as the base has them; and fetching a
closure's packages at once, all or none."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TypeVar

from dockyard.build.entries import Entry, Kind, parent_of
from dockyard.build.layers import LayerBuilder
from dockyard.build.rootfs import RootFS

T = TypeVar("T")


def placed(path: str, base: RootFS) -> str:
    """Where `path` lands in the base: its folder's symlinks followed."""
    parent = parent_of(path)
    if not parent:
        return path
    resolved = base.resolve(parent)
    name = path.rsplit("/", 1)[-1]
    return f"{resolved}/{name}" if resolved else name


async def put(layer: LayerBuilder, base: RootFS, added: set[str], entry: Entry) -> None:
    """Add `entry`, leaving alone a folder the base (or this layer, `added`) already has."""
    if entry.kind == Kind.DIR:
        if entry.path in added or base.entry(entry.path) is not None:
            return
        added.add(entry.path)
    await layer.add(entry)


async def fetch_all(fetches: Iterable[Awaitable[T]]) -> list[T]:
    """Run `fetches` at once; when one fails, the others are cancelled and waited for (so
    none is left writing a temporary file) before its error is raised."""
    tasks = [asyncio.ensure_future(fetch) for fetch in fetches]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
