"""Layers that are the same bytes whenever they hold the same files: reproducible tar + gzip
or zstd, written from files staged on disk (never a layer in memory).

A `LayerBuilder` is filled with entries in any order (a later entry at a path replaces the
earlier one: artifacts applied in order override each other), then `write` lays them out as
reproducible-builds.org asks: sorted by path, times clamped to SOURCE_DATE_EPOCH (the base
image's `created`), no user or group names, PAX headers only where needed, a gzip header
without a name or time. Both digests are computed as the bytes are written: the blob's (of
the compressed bytes) and the diff_id (of the tar). Everything here is synchronous; callers
run it in a worker thread (zlib, zstd and hashlib release the GIL).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import os
import shutil
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Literal, Protocol, cast

import zstandard

from dockyard.build.entries import Entry, Kind
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest

StagedKind = Literal["file", "dir", "symlink", "hardlink"]
Compression = Literal["GZIP", "ZSTD"]
GZIP_LEVEL = 6
ZSTD_LEVEL = 3
_CHUNK = 1024 * 1024
_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
}


@dataclass(frozen=True)
class Staged:
    """One entry of a layer; a file's bytes wait in `data` (a staged file) or `inline`."""

    path: str  # relative, as layers name it: usr/bin/curl
    kind: StagedKind
    mode: int
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    link: str = ""  # a symlink's target, or the path a hardlink names
    size: int = 0
    data: Path | None = None
    inline: bytes | None = None


@dataclass(frozen=True)
class LayerBlob:
    """A written layer: the file holding the blob, its descriptor and its diff_id."""

    path: Path
    descriptor: Descriptor
    diff_id: Digest


class LayerBuilder:
    """Collects a layer's entries (staging file bytes under `workdir`), then writes it."""

    def __init__(self, workdir: Path, epoch: int) -> None:
        self.workdir = workdir
        self.epoch = epoch
        self._entries: dict[str, Staged] = {}
        self._staged = 0
        workdir.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, path: str) -> bool:
        return path in self._entries

    def add_file(
        self,
        path: str,
        data: bytes | IO[bytes],
        mode: int,
        uid: int = 0,
        gid: int = 0,
        mtime: int | None = None,
    ) -> None:
        """A regular file; a stream is copied to a staging file (read once, in pieces)."""
        if isinstance(data, bytes):
            entry = Staged(path, "file", mode, uid, gid, self._clamp(mtime), size=len(data))
            self._put(replace(entry, inline=data))
            return
        self._staged += 1
        staged = self.workdir / f"staged-{self._staged}"
        with staged.open("wb") as out:
            shutil.copyfileobj(data, out, _CHUNK)
            size = out.tell()
        self._put(Staged(path, "file", mode, uid, gid, self._clamp(mtime), size=size, data=staged))

    async def add(self, entry: Entry, mtime: int | None = None) -> None:
        """Add an entry as `build/entries.py` describes it; a streamed file's bytes are staged
        as they arrive (written in a worker thread)."""
        if entry.kind == Kind.FILE:
            if entry.data is None or isinstance(entry.data, bytes):
                data = entry.data or b""
                self.add_file(entry.path, data, entry.mode, entry.uid, entry.gid, mtime)
                return
            self._staged += 1
            staged = self.workdir / f"staged-{self._staged}"
            out = await asyncio.to_thread(staged.open, "wb")
            try:
                async for chunk in entry.chunks():
                    await asyncio.to_thread(out.write, chunk)
            finally:
                await asyncio.to_thread(out.close)
            size = staged.stat().st_size
            if size != entry.size:
                raise ValueError(f"{entry.path}: {size} bytes, not the {entry.size} announced")
            clamped = self._clamp(mtime)
            self._put(
                Staged(
                    entry.path,
                    "file",
                    entry.mode,
                    entry.uid,
                    entry.gid,
                    clamped,
                    size=size,
                    data=staged,
                )
            )
        elif entry.kind == Kind.DIR:
            self.add_dir(entry.path, entry.mode, entry.uid, entry.gid, mtime)
        elif entry.kind == Kind.SYMLINK:
            self.add_symlink(entry.path, entry.link, entry.uid, entry.gid, mtime)
        elif entry.kind == Kind.HARDLINK:
            self.add_hardlink(entry.path, entry.link, entry.mode, entry.uid, entry.gid, mtime)
        else:
            raise ValueError(f"{entry.path}: a device or FIFO cannot go into a layer")

    def add_dir(
        self, path: str, mode: int, uid: int = 0, gid: int = 0, mtime: int | None = None
    ) -> None:
        self._put(Staged(path, "dir", mode, uid, gid, self._clamp(mtime)))

    def add_symlink(
        self, path: str, target: str, uid: int = 0, gid: int = 0, mtime: int | None = None
    ) -> None:
        self._put(Staged(path, "symlink", 0o777, uid, gid, self._clamp(mtime), link=target))

    def add_hardlink(
        self,
        path: str,
        target: str,
        mode: int,
        uid: int = 0,
        gid: int = 0,
        mtime: int | None = None,
    ) -> None:
        """`path` is another name of the file at `target` (added to this layer too)."""
        self._put(Staged(path, "hardlink", mode, uid, gid, self._clamp(mtime), link=target))

    def write(self, compression: Compression) -> LayerBlob:
        """Write the layer to a file under `workdir`: sorted, reproducible, both digests."""
        self._staged += 1
        target = self.workdir / f"layer-{self._staged}"
        with target.open("wb") as raw:
            blob = _Hashing(raw)
            compressed: _Sink
            if compression == "GZIP":
                compressed = gzip.GzipFile(
                    filename="", mode="wb", fileobj=blob, compresslevel=GZIP_LEVEL, mtime=0
                )
                media_type = mt.OCI_LAYER_GZIP
            else:
                params = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
                compressed = params.stream_writer(cast(IO[bytes], blob), closefd=False)
                media_type = mt.OCI_LAYER_ZSTD
            tar_stream = _Hashing(compressed)
            with tarfile.open(fileobj=tar_stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for entry in self._ordered():
                    _write_entry(tar, entry)
            compressed.close()
            raw.flush()
            os.fsync(raw.fileno())
        descriptor = Descriptor(media_type, blob.digest(), blob.size)
        return LayerBlob(target, descriptor, tar_stream.digest())

    def _clamp(self, mtime: int | None) -> int:
        return self.epoch if mtime is None else min(int(mtime), self.epoch)

    def _put(self, entry: Staged) -> None:
        self._entries[entry.path] = entry

    def _ordered(self) -> list[Staged]:
        """The entries by path. Names of one file (hardlinks) are written as the file under
        the name that sorts first and links to it after, as a tar must."""
        entries = dict(self._entries)
        names: dict[str, list[str]] = {}  # a file's path → the hardlinks naming it
        for entry in entries.values():
            if entry.kind == "hardlink":
                file = entries.get(entry.link)
                if file is None or file.kind != "file":
                    raise ValueError(f"{entry.path} links to {entry.link}, no file of the layer")
                names.setdefault(entry.link, []).append(entry.path)
        for path, links in names.items():
            first = min(links)
            if first < path:
                file = entries[path]
                entries[first] = replace(file, path=first)
                for name in [path, *links]:
                    if name != first:
                        link = replace(file, path=name, kind="hardlink", link=first, size=0)
                        entries[name] = replace(link, data=None, inline=None)
        return sorted(entries.values(), key=lambda e: e.path)


def _write_entry(tar: tarfile.TarFile, entry: Staged) -> None:
    info = tarfile.TarInfo(entry.path + "/" if entry.kind == "dir" else entry.path)
    info.type = _TYPES[entry.kind]
    info.mode = entry.mode & 0o7777
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    info.mtime = entry.mtime
    info.linkname = entry.link
    if entry.kind != "file":
        tar.addfile(info)
        return
    info.size = entry.size
    if entry.inline is not None:
        tar.addfile(info, io.BytesIO(entry.inline))
        return
    assert entry.data is not None
    with entry.data.open("rb") as data:
        tar.addfile(info, data)
    entry.data.unlink()  # written: the staging space goes back as the layer grows


class _Sink(Protocol):
    def write(self, data: bytes | memoryview, /) -> int: ...

    def close(self) -> None: ...


class _Hashing(io.RawIOBase):
    """A write-only stream that hashes and counts what passes to `out`."""

    def __init__(self, out: _Sink) -> None:
        self._out = out
        self._hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data)
        self._hash.update(view)
        self.size += len(view)
        self._out.write(view)
        return len(view)

    def digest(self) -> Digest:
        return Digest("sha256", self._hash.hexdigest())
