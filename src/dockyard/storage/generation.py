"""A change stamp shared by the processes of one host, so that their read caches agree.

Every process serving from a data folder maps the same 8-byte file. A process that changes
something cached bumps the stamp after its commit. A cache entry remembers the stamp read
before its value was loaded and is used only while the stamp is unchanged, so a write made by
one worker is seen at once by every worker on the host. Nodes on other hosts do not share the
file; for them the caches' TTL bounds how long a write goes unseen.

A bump writes a fresh random value rather than incrementing: two processes bumping at once
cannot then write the same value, and any change is all a reader needs to notice.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

_FORMAT = struct.Struct("=Q")


class Generation:
    """The shared stamp; with no `path`, a stamp private to this process."""

    def __init__(self, path: Path | None = None) -> None:
        self._map: mmap.mmap | None = None
        self._local = 0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size < _FORMAT.size:
                    os.ftruncate(fd, _FORMAT.size)
                self._map = mmap.mmap(fd, _FORMAT.size)
            finally:
                os.close(fd)

    def current(self) -> int:
        if self._map is None:
            return self._local
        value: int = _FORMAT.unpack_from(self._map)[0]
        return value

    def bump(self) -> None:
        value = int.from_bytes(os.urandom(_FORMAT.size), "little")  # fork-safe, unlike random
        if self._map is None:
            self._local = value
        else:
            _FORMAT.pack_into(self._map, 0, value)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
