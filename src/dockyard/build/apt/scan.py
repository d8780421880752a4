"""A `Packages` index located, not parsed: where each stanza starts, with its name, version,
architecture and the names it provides, read in a few regex passes over the bytes.

A full index (bookworm main: 63k stanzas, 50 MB) takes seconds and hundreds of MiB to turn into
`Package` records, while a resolver looks at a few hundred of them. The passes here cost a tenth
of that; a stanza is parsed when it is asked for. A file is mapped, not read: its pages are the
kernel's to drop. Scans of the last few files are kept by path, size, inode and mtime (the
verified cache's files are named by their SHA256 and never change), so a worker's next plan does
not scan again.
"""

from __future__ import annotations

import bisect
import itertools
import mmap
import os
import re
import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from dockyard.build.apt.packages import _NAMES, RELATION_FIELDS, Package, stanzas

KEPT_SCANS = 4
"""How many files' scans a process keeps (a suite, its -updates and -security, one more)."""


class Buffer(Protocol):
    """What a scan reads: `bytes` or an `mmap`."""

    def __len__(self) -> int: ...
    def __getitem__(self, item: slice, /) -> bytes: ...
    def find(self, sub: bytes, start: int = ..., end: int = ..., /) -> int: ...
    def rfind(self, sub: bytes, start: int = ..., end: int = ..., /) -> int: ...


# Fields start a line; the first stanza's `Package` starts the file.
_PACKAGE = re.compile(rb"\nPackage:[ \t]*([^\n]*)")
_VERSION = re.compile(rb"\nVersion:[ \t]*([^\n]*)")
_ARCHITECTURE = re.compile(rb"\nArchitecture:[ \t]*([^\n]*)")
_BLOCK = re.compile(rb"\n\n+[^\n]")
_PROVIDES = re.compile(rb"\nProvides:([^\n]*(?:\n[ \t][^\n]*)*)")
_FIELD_RANKS = {b"package": 0} | {
    name.encode(): rank for rank, name in enumerate(RELATION_FIELDS, start=1)
}
_FIELDS = b"|".join(re.escape(f.encode()) for f in ("Package", *RELATION_FIELDS))
_MENTION_FIRST = re.compile(rb"(" + _FIELDS + rb"):([^\n]*(?:\n[ \t][^\n]*)*)", re.IGNORECASE)
_MENTION = re.compile(rb"\n" + _MENTION_FIRST.pattern, re.IGNORECASE)
"""A field a cache numbers names from, with its continuation lines (`_FIRST`: the file's first
line; the other begins with the newline before the field, which keeps the search fast)."""
_FIELD_END = re.compile(rb"\n(?![ \t])")
_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]*")
_NAME_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789+.-")
_SPACE = frozenset(b" \t\n\r\f\v")


@dataclass(eq=False)
class IndexFile:
    """One index's stanzas in file order: offsets and the few fields a candidate index needs."""

    data: Buffer
    starts: array[int]
    names: list[str]
    versions: list[str]
    architectures: list[str]
    provides: dict[int, list[str]] = field(default_factory=dict)
    """Stanza number → the names its `Provides` lists (only stanzas that have one)."""
    _mentions: dict[tuple[str, ...], dict[str, tuple[int, int]]] = field(default_factory=dict)

    def package(self, number: int, origin: str) -> Package:
        """Stanza `number`, parsed."""
        start = self.starts[number]
        end = self.data.find(b"\n\n", start)
        text = self.data[start : len(self.data) if end < 0 else end].decode("utf-8")
        return Package.from_fields(next(stanzas(text)), origin)

    def first_mention(
        self, name: str, architectures: tuple[str, ...]
    ) -> tuple[tuple[int, int] | None, int]:
        """Where apt's cache first meets `name` in this file, as (stanza number, order within
        the stanza: its own `Package` line, then the relation fields in `RELATION_FIELDS`
        order, names in a field in text order), and how many bytes were searched for it;
        stanzas of other architectures do not count."""
        wanted = name.encode()
        related = _NAME.fullmatch(name) is not None  # else only a `Package` line names it
        best: tuple[int, int] | None = None
        limit = len(self.data)
        at = self.data.find(wanted)
        while 0 <= at < limit:
            found = self._mention(at, wanted, related, architectures)
            if found is not None and (best is None or found < best):
                if best is None and found[0] + 1 < len(self.starts):
                    limit = self.starts[found[0] + 1]  # only this stanza can still be earlier
                best = found
            at = self.data.find(wanted, at + 1)
        return best, limit

    def mentions(self, architectures: tuple[str, ...]) -> dict[str, tuple[int, int]]:
        """`first_mention` of every name at once, in one pass (kept for the next index)."""
        found = self._mentions.get(architectures)
        if found is not None:
            return found
        found = {}
        starts, stanza, following = self.starts, -1, 0
        first = _MENTION_FIRST.match(self.data)  # type: ignore[call-overload]
        rest = _MENTION.finditer(self.data)  # type: ignore[call-overload]
        for match in itertools.chain([first] if first else [], rest):
            while following < len(starts) and starts[following] <= match.end(1):
                stanza, following = following, following + 1
            if stanza < 0 or self.architectures[stanza] not in architectures:
                continue
            rank = _FIELD_RANKS[match.group(1).lower()]
            value = match.group(2).decode("utf-8")
            names = [value.strip()] if rank == 0 else _NAMES.findall(value)
            for position, name in enumerate(names):
                key = (stanza, (rank << 32) + position)
                known = found.get(name)
                if known is None or key < known:
                    found[name] = key
        self._mentions[architectures] = found
        return found

    def _mention(
        self, at: int, wanted: bytes, related: bool, architectures: tuple[str, ...]
    ) -> tuple[int, int] | None:
        """The mention at offset `at` as `_NAMES` would read it from its field, or None."""
        data, end = self.data, at + len(wanted)
        if end < len(data) and data[end : end + 1][0] in _NAME_BYTES:
            return None  # part of a longer name
        before = at - 1
        while before >= 0 and data[before : before + 1][0] in _SPACE:
            before -= 1
        if before < 0 or data[before : before + 1] not in (b":", b",", b"|"):
            return None
        line = data.rfind(b"\n", 0, at) + 1
        while data[line : line + 1] in (b" ", b"\t") and line > 0:
            line = data.rfind(b"\n", 0, line - 1) + 1  # a continuation: back to its field
        colon = data.find(b":", line, at)
        rank = _FIELD_RANKS.get(data[line:colon].lower()) if colon >= 0 else None
        if rank is None or (data[before : before + 1] == b":" and before != colon):
            return None
        stop = _FIELD_END.search(data, at)  # type: ignore[call-overload]
        value = data[colon + 1 : stop.start() if stop else len(data)].decode("utf-8")
        if rank == 0:
            position = 0 if value.strip() == wanted.decode() else None
        else:
            names = _NAMES.findall(value) if related else []
            position = names.index(wanted.decode()) if wanted.decode() in names else None
        number = bisect.bisect_right(self.starts, line) - 1
        if position is None or number < 0 or self.architectures[number] not in architectures:
            return None
        return number, (rank << 32) + position


def scan(data: Buffer) -> IndexFile:
    """Locate every stanza of a `Packages` text; raises ValueError, as parsing would, when a
    stanza lacks `Package` or `Version`."""
    found = [(m.start() + 1, m.group(1)) for m in _PACKAGE.finditer(data)]  # type: ignore[call-overload]
    if data[:8] == b"Package:":
        stop = data.find(b"\n")
        found.insert(0, (0, data[8 : len(data) if stop < 0 else stop]))
    starts = array("q", (start for start, _ in found))
    versions = _aligned(_VERSION, data, starts)
    architectures = _aligned(_ARCHITECTURE, data, starts)
    if versions is None or architectures is None or not _blocks(data, starts):
        return _scan_slowly(data)
    provides: dict[int, list[str]] = {}
    for match in _PROVIDES.finditer(data):  # type: ignore[call-overload]
        number = bisect.bisect_right(starts, match.start()) - 1
        provides[number] = _NAMES.findall(match.group(1).decode("utf-8").strip())
    return IndexFile(
        data,
        starts,
        [name.decode("utf-8").strip() for _, name in found],
        [version.decode("utf-8").strip() for version in versions],
        _interned(architectures),
        provides,
    )


def _aligned(pattern: re.Pattern[bytes], data: Buffer, starts: array[int]) -> list[bytes] | None:
    """A field's values, one per stanza, or None unless each stanza has exactly one."""
    values = []
    ends = [*starts[1:], len(data)]
    for number, match in enumerate(pattern.finditer(data)):  # type: ignore[call-overload]
        if number >= len(starts) or not starts[number] < match.start() < ends[number]:
            return None
        values.append(match.group(1))
    return values if len(values) == len(starts) else None


def _blocks(data: Buffer, starts: array[int]) -> bool:
    """Whether each stanza a split on blank lines finds (what `stanzas` yields) begins with
    one of the `Package` lines at `starts`."""
    if any(start and data[start - 2 : start] != b"\n\n" for start in starts):
        return False
    first = 1 if data[:1] not in (b"", b"\n") else 0
    return first + len(_BLOCK.findall(data)) == len(starts)  # type: ignore[call-overload]


def _interned(values: list[bytes]) -> list[str]:
    known: dict[bytes, str] = {}
    return [known.get(v) or known.setdefault(v, v.decode("utf-8").strip()) for v in values]


def _scan_slowly(data: Buffer) -> IndexFile:
    """The scan for a file the fast passes cannot read (fields out of their usual order or
    case): every stanza parsed once, only the located fields kept."""
    starts: array[int] = array("q")
    names: list[str] = []
    versions: list[str] = []
    architectures: list[str] = []
    provides: dict[int, list[str]] = {}
    at = 0
    while at < len(data):
        stop = data.find(b"\n\n", at)
        stop = len(data) if stop < 0 else stop
        for fields in stanzas(data[at:stop].decode("utf-8")):
            package = Package.from_fields(fields)
            if package.provides_text:
                provides[len(names)] = _NAMES.findall(package.provides_text)
            while data[at : at + 1] == b"\n":
                at += 1
            starts.append(at)
            names.append(package.name)
            versions.append(package.version)
            architectures.append(package.architecture)
        at = stop + 2
    return IndexFile(data, starts, names, versions, architectures, provides)


_scans: OrderedDict[tuple[str, int, int, int], IndexFile] = OrderedDict()
_lock = threading.Lock()


def open_index(path: Path) -> IndexFile:
    """The scan of the index file at `path`, mapped; kept for the next plan (the last
    `KEPT_SCANS` files)."""
    with open(path, "rb") as handle:
        status = os.fstat(handle.fileno())
        key = (str(path), status.st_size, status.st_ino, status.st_mtime_ns)
        with _lock:
            if key in _scans:
                _scans.move_to_end(key)
                return _scans[key]
        data: Buffer = (
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if status.st_size else b""
        )
    found = scan(data)
    with _lock:
        _scans[key] = found
        while len(_scans) > KEPT_SCANS:
            _scans.popitem(last=False)
    return found
