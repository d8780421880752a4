"""A file to put in a layer: the one shape every contributor (artifacts, accounts, packages,
files) hands to the layer writer, and the shape an image's filesystem is read back as.

Paths are clean and relative to the root (`etc/passwd`, never `/etc/passwd`, `./etc/passwd`
or `etc/passwd/`; the root itself is `""`), so two spellings of one path are one key. The
writer decides mtimes, names of owners and order; an entry says only what the file is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

Opener = Callable[[], AsyncIterator[bytes]]
"""Opens a file's bytes afresh as a stream each time it is called."""

READ_CHUNK = 1024 * 1024


class Kind(StrEnum):
    """What an entry is."""

    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    OTHER = "other"
    """A device or a FIFO: seen in an image read back, never written into a new layer."""


def clean_path(text: str) -> str:
    """`text` as a clean relative path (`./a`, `/a`, `a/`, `a//b` are all `a`...); `""` is the
    root. `ValueError` for a `..` component: no spelling may name a place outside the root."""
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"path {text!r} has a '..' component")
    return "/".join(parts)


def parent_of(path: str) -> str:
    """The clean path of `path`'s directory (`""`, the root, for a top-level name)."""
    return path.rpartition("/")[0]


def is_within(path: str, top: str) -> bool:
    """Whether `path` is `top` or lies under it (every path lies under the root `""`)."""
    return not top or path == top or path.startswith(top + "/")


@dataclass(frozen=True, slots=True)
class Entry:
    """One file, directory or link of a layer.

    `mode` holds the permission bits (with setuid, setgid and sticky: `0o7777`), never the
    type. `link` is a symlink's target as written, or for a hard link the clean path of the
    file it shares. `data` is set for a file only: its bytes, or an `Opener`; `size` is the
    file's length (0 for anything else). An entry read back from an image has `data=None`
    unless its bytes were collected.
    """

    path: str
    kind: Kind
    mode: int
    uid: int = 0
    gid: int = 0
    link: str = ""
    size: int = 0
    data: bytes | Opener | None = None

    def __post_init__(self) -> None:
        if clean_path(self.path) != self.path:
            raise ValueError(f"entry path {self.path!r} is not clean: use clean_path()")
        if not 0 <= self.mode <= 0o7777:
            raise ValueError(f"entry {self.path!r}: mode {self.mode:o} is not permission bits")
        if self.kind in (Kind.SYMLINK, Kind.HARDLINK) and not self.link:
            raise ValueError(f"entry {self.path!r}: a {self.kind} needs a link target")
        if self.kind != Kind.FILE and (self.size or self.data is not None):
            raise ValueError(f"entry {self.path!r}: only a file has a size and data")
        if isinstance(self.data, bytes) and len(self.data) != self.size:
            raise ValueError(f"entry {self.path!r}: size {self.size} but {len(self.data)} bytes")

    @classmethod
    def file(cls, path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> Entry:
        """A regular file holding `data`."""
        return cls(clean_path(path), Kind.FILE, mode, uid, gid, size=len(data), data=data)

    @classmethod
    def directory(cls, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Entry:
        """A directory."""
        return cls(clean_path(path), Kind.DIR, mode, uid, gid)

    @classmethod
    def symlink(cls, path: str, target: str, uid: int = 0, gid: int = 0) -> Entry:
        """A symbolic link to `target` (kept as written: relative or absolute)."""
        return cls(clean_path(path), Kind.SYMLINK, 0o777, uid, gid, link=target)

    def chunks(self) -> AsyncIterator[bytes]:
        """The file's bytes as a stream (nothing for an entry without data)."""
        if callable(self.data):
            return self.data()
        return _once(self.data or b"")


async def _once(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


def file_range(path: Path, offset: int, size: int) -> Opener:
    """An opener for `size` bytes at `offset` of the file at `path`, read in worker threads
    a chunk at a time (for bytes spooled to disk while a layer streamed by)."""

    async def chunks() -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(path.open, "rb")
        try:
            await asyncio.to_thread(handle.seek, offset)
            remaining = size
            while remaining > 0:
                chunk = await asyncio.to_thread(handle.read, min(READ_CHUNK, remaining))
                if not chunk:
                    raise OSError(f"{path} ended {remaining} bytes early")
                remaining -= len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)

    return chunks
