"""Base images read once: a `RootFS` scan kept on disk by the base manifest's digest.

A scan streams every layer of the base (about a second for a Debian minbase); what it keeps is
small (each path's metadata, and the bytes of the few files a build reads), and a digest names
it forever. So a rebuild of a customization whose base has not moved, on any worker of this
host, reads the base from here instead. The file is JSON lines, written to a temporary name
and renamed; one that cannot be read is scanned again. The newest `KEEP` are kept.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from pathlib import Path
from typing import Any

import orjson

from dockyard.build.entries import Entry, Kind
from dockyard.build.rootfs import RootFS
from dockyard.client.target import Target
from dockyard.oci.manifest import Manifest
from dockyard.oci.reference import Reference

KEEP = 32
VERSION = 1


async def scanned(folder: Path, target: Target, ref: Reference, manifest: Manifest) -> RootFS:
    """The base `manifest` (one platform's image) as `RootFS.scan` reads it, from `folder`
    when an earlier build kept it there."""
    path = folder / f"{manifest.digest.algorithm}-{manifest.digest.encoded}.jsonl"
    loaded = await asyncio.to_thread(_load, path, target, ref, manifest)
    if loaded is not None:
        return loaded
    rootfs = await RootFS.scan(target, ref, manifest)
    await asyncio.to_thread(_save, folder, path, rootfs)
    return rootfs


async def read_base(
    workdir: Path | None, target: Target, ref: Reference, manifest: Manifest
) -> RootFS:
    """The base read once by a build, a plan or a search of this host (kept under
    `workdir/bases`), or scanned now when there is no `workdir`."""
    if workdir is None:
        return await RootFS.scan(target, ref, manifest)
    return await scanned(workdir / "bases", target, ref, manifest)


def _save(folder: Path, path: Path, rootfs: RootFS) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    with temporary.open("wb") as out:
        out.write(orjson.dumps({"version": VERSION, "layers": len(rootfs.layers)}) + b"\n")
        for name in rootfs.tree.under():
            node = rootfs.tree.node(name)
            if node is None:
                continue
            e = node.entry
            data = base64.b64encode(e.data).decode() if isinstance(e.data, bytes) else None
            row = [e.path, e.kind.value, e.mode, e.uid, e.gid, e.link, e.size, node.layer, data]
            out.write(orjson.dumps(row) + b"\n")
    temporary.replace(path)
    kept = sorted(folder.glob("*.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in kept[KEEP:]:
        with contextlib.suppress(OSError):
            stale.unlink()


def _load(path: Path, target: Target, ref: Reference, manifest: Manifest) -> RootFS | None:
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return None
    rootfs = RootFS(target, ref, manifest.blobs[1:])
    try:
        header: dict[str, Any] = orjson.loads(lines[0])
        if header.get("version") != VERSION or header.get("layers") != len(rootfs.layers):
            return None
        for line in lines[1:]:
            name, kind, mode, uid, gid, link, size, layer, data = orjson.loads(line)
            content = base64.b64decode(data) if data is not None else None
            entry = Entry(name, Kind(kind), mode, uid, gid, link, size, content)
            rootfs.tree.put(entry, layer)
    except (ValueError, IndexError, TypeError):
        return None  # cut short or from another version: scanned again, and replaced
    with contextlib.suppress(OSError):
        os.utime(path)  # the newest are kept
    return rootfs
