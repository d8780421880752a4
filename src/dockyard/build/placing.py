"""Putting a package's files over a base, as a package manager writing through the base's
filesystem would: folders followed through the base's symlinks (a merged-/usr base has
/bin → usr/bin), and folders the base already has left as the base has them."""

from __future__ import annotations

from dockyard.build.entries import Entry, Kind, parent_of
from dockyard.build.layers import LayerBuilder
from dockyard.build.rootfs import RootFS


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
