"""A `.deb` read in process and streaming, never whole in memory: the `ar` members, the control
files, and the data entries as an iterator a layer writer consumes in order.

Data entries are normalized (`./usr/bin/x` → `usr/bin/x`) and checked: absolute names, `..`
or `.` components, hard links to anything but an earlier file of the package, relative symbolic
links that climb out of the root, and device nodes are refused (`UnsafeEntry`): a package never
needs them, and a layer must not carry them. Absolute symbolic links stay: they resolve inside
the image. FIFOs are kept (dpkg allows them).
"""

from __future__ import annotations

import bz2
import io
import lzma
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, BinaryIO

import zstandard
from debian.deb822 import Deb822

AR_MAGIC = b"!<arch>\n"
READ_SIZE = 1024 * 1024
CONTROL_LIMIT = 64 * 1024 * 1024  # the control member's files are read whole: bound them
SCRIPTS = ("preinst", "postinst", "prerm", "postrm", "config")
_COMPRESSIONS = ("", ".gz", ".xz", ".bz2", ".zst")
_KEPT_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE)


class DebError(Exception):
    """A `.deb` that cannot be read: not an archive, members missing or out of order."""


class UnsafeEntry(DebError):
    """A data entry that must not be placed in an image (it names the package and the entry)."""


@dataclass(frozen=True)
class ArMember:
    """One member of an `ar` archive: its name and where its bytes are."""

    name: str
    offset: int
    size: int


@dataclass(frozen=True)
class DebControl:
    """What the control member says: the control stanza (bytes as shipped, and parsed), the
    `md5sums` and `conffiles` files, and which maintainer scripts the package has."""

    control: bytes
    fields: dict[str, str]
    md5sums: bytes | None
    conffiles: tuple[str, ...]
    scripts: tuple[str, ...]
    files: dict[str, bytes] = field(default_factory=dict)  # every control file, by name

    @property
    def package(self) -> str:
        """The package's name."""
        return self.fields.get("Package", "")


@dataclass
class DebEntry:
    """A data entry: its normalized path, its tar header (name normalized the same way), and
    for a regular file a stream of its bytes, readable until the next entry is asked for."""

    path: str
    info: tarfile.TarInfo
    stream: IO[bytes] | None


class Deb:
    """A `.deb` file opened for reading: `control` once, then `entries()` once, in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: BinaryIO = path.open("rb")
        try:
            members = ar_members(self._handle, str(path))
            self._control_member, self._data_member = _deb_members(members, str(path))
        except BaseException:
            self._handle.close()
            raise
        self._control: DebControl | None = None

    def __enter__(self) -> Deb:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self._handle.close()

    @property
    def control(self) -> DebControl:
        """The control member's contents (read on first use, bounded by `CONTROL_LIMIT`)."""
        if self._control is None:
            self._control = _read_control(self._handle, self._control_member, str(self.path))
        return self._control

    @property
    def data_compression(self) -> str:
        """The data member's compression: `gz`, `xz`, `zst`, `bz2`, or `` (none)."""
        return self._data_member.name.removeprefix("data.tar").lstrip(".")

    def entries(self) -> Iterator[DebEntry]:
        """The data member's entries in archive order, normalized and checked (`UnsafeEntry`).
        The root directory (`./`) is not an entry."""
        where = self.control.package or str(self.path)
        files: set[str] = set()
        with _open_tar(self._handle, self._data_member) as archive:
            for info in archive:
                entry = _normalized(info, where, files)
                if entry is None:
                    continue
                stream = archive.extractfile(info) if info.isreg() else None
                yield DebEntry(entry, info, stream)


def ar_members(handle: BinaryIO, where: str) -> list[ArMember]:
    """The members of the `ar` archive in `handle` (seekable), in order, without reading them."""
    handle.seek(0)
    if handle.read(len(AR_MAGIC)) != AR_MAGIC:
        raise DebError(f"{where}: not a .deb (no ar archive header)")
    members: list[ArMember] = []
    while True:
        header = handle.read(60)
        if not header:
            return members
        if len(header) != 60 or header[58:60] != b"`\n":
            raise DebError(f"{where}: broken ar member header at {handle.tell() - len(header)}")
        name = header[0:16].decode("ascii", "replace").rstrip().removesuffix("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError as exc:
            raise DebError(f"{where}: ar member {name!r} has no size") from exc
        members.append(ArMember(name, handle.tell(), size))
        handle.seek(size + (size & 1), io.SEEK_CUR)


def _deb_members(members: list[ArMember], where: str) -> tuple[ArMember, ArMember]:
    """The control and data members, after checking the format version comes first."""
    names = [m.name for m in members if not m.name.startswith("_")]  # `_…`: extensions
    if len(names) != 3 or names[0] != "debian-binary":
        raise DebError(f"{where}: members are {names}, expected debian-binary, control, data")
    control, data = (m for m in members if m.name in names[1:])
    if not control.name.startswith("control.tar") or not data.name.startswith("data.tar"):
        raise DebError(f"{where}: members are {names}, expected debian-binary, control, data")
    for member in (control, data):
        suffix = member.name.split(".tar", 1)[1]
        if suffix not in _COMPRESSIONS:
            raise DebError(f"{where}: {member.name} uses a compression this reader lacks")
    return control, data


class _Slice(io.RawIOBase):
    """A member's bytes: a window of the archive file, read from where it was left."""

    def __init__(self, handle: BinaryIO, member: ArMember) -> None:
        self._handle = handle
        self._position = member.offset
        self._end = member.offset + member.size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        wanted = min(len(buffer), self._end - self._position)
        if wanted <= 0:
            return 0
        self._handle.seek(self._position)
        data = self._handle.read(wanted)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def _open_tar(handle: BinaryIO, member: ArMember) -> tarfile.TarFile:
    """The member as a tar stream. Decompression is ours, not tarfile's: tarfile's stream mode
    inflates a whole compressed block at once (a block of text is 100 MB) and copies what is
    left on every read, which is slow and unbounded; here every call yields at most one buffer."""
    suffix = member.name.split(".tar", 1)[1]
    raw: IO[bytes] = io.BufferedReader(_Slice(handle, member), READ_SIZE)
    if suffix == ".zst":
        raw = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    elif suffix:
        raw = io.BufferedReader(_Inflating(raw, suffix, member.name), READ_SIZE)
    return tarfile.open(fileobj=raw, mode="r|", bufsize=READ_SIZE)


class _Inflating(io.RawIOBase):
    """A gzip, xz or bzip2 stream decompressed at most one caller's buffer at a time."""

    def __init__(self, raw: IO[bytes], suffix: str, where: str) -> None:
        self._raw = raw
        self._where = where
        self._zlib = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS) if suffix == ".gz" else None
        self._other = lzma.LZMADecompressor() if suffix == ".xz" else bz2.BZ2Decompressor()
        self._pending = b""
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._ended:
            out = self._step(len(buffer))
            if out:
                buffer[: len(out)] = out
                return len(out)
        return 0

    def _step(self, limit: int) -> bytes:
        if self._zlib is not None:
            if not self._pending:
                self._pending = self._raw.read(READ_SIZE)
            if not self._pending:  # input over: what zlib still holds, then it must be done
                out = self._zlib.decompress(b"", limit)
                if not out:
                    self._finish(self._zlib.eof)
                return out
            out = self._zlib.decompress(self._pending, limit)
            self._pending = self._zlib.unconsumed_tail
            if self._zlib.eof:
                self._ended = not out
            return out
        if self._other.eof:
            self._ended = True
            return b""
        data = b""
        if self._other.needs_input:
            data = self._raw.read(READ_SIZE)
            if not data:
                self._finish(False)
                return b""
        return self._other.decompress(data, limit)

    def _finish(self, complete: bool) -> None:
        if not complete:
            raise DebError(f"{self._where}: the compressed member is truncated")
        self._ended = True


def _read_control(handle: BinaryIO, member: ArMember, where: str) -> DebControl:
    files: dict[str, bytes] = {}
    total = 0
    with _open_tar(handle, member) as archive:
        for info in archive:
            name = info.name.removeprefix("./")
            if not info.isreg() or "/" in name:
                continue
            total += info.size
            if total > CONTROL_LIMIT:
                raise DebError(f"{where}: control files larger than {CONTROL_LIMIT} bytes")
            stream = archive.extractfile(info)
            assert stream is not None  # a regular file always has a stream
            files[name] = stream.read()
    if "control" not in files:
        raise DebError(f"{where}: the control member has no control file")
    fields = dict(Deb822(files["control"]).items())
    lines = files.get("conffiles", b"").decode().splitlines()
    conffiles = tuple(line.split()[-1] for line in lines if line.strip())  # flags come first
    return DebControl(
        control=files["control"],
        fields=fields,
        md5sums=files.get("md5sums"),
        conffiles=conffiles,
        scripts=tuple(s for s in SCRIPTS if s in files),
        files=files,
    )


def normalize(name: str, where: str) -> str:
    """A tar member name as a path relative to the root (`./usr/bin/x` → `usr/bin/x`; the
    root itself is ``); `UnsafeEntry` for an absolute name or a `.`/`..` component."""
    if name.startswith("/"):
        raise UnsafeEntry(f"{where}: entry {name!r} is an absolute path")
    path = name.removeprefix("./").rstrip("/")
    if path in ("", "."):
        return ""
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafeEntry(f"{where}: entry {name!r} has an empty, '.' or '..' component")
    return path


def _normalized(info: tarfile.TarInfo, where: str, files: set[str]) -> str | None:
    path = normalize(info.name, where)
    if not path:
        return None
    if info.ischr() or info.isblk():
        raise UnsafeEntry(f"{where}: entry {path!r} is a device node")
    if info.islnk():
        target = normalize(info.linkname, where)
        if target not in files:
            raise UnsafeEntry(
                f"{where}: hard link {path!r} points to {info.linkname!r}, not an earlier file "
                "of the package"
            )
        info.linkname = target
    elif info.issym():
        _check_symlink(path, info.linkname, where)
    elif info.type not in _KEPT_TYPES and not info.isfifo():
        raise UnsafeEntry(f"{where}: entry {path!r} has tar type {info.type!r}")
    if info.isreg():
        files.add(path)
    info.name = path
    return path


def _check_symlink(path: str, target: str, where: str) -> None:
    """Refuse a relative target that climbs above the root, walking it from the link's folder
    as the kernel would if every component were a folder (the lexical walk)."""
    if not target:
        raise UnsafeEntry(f"{where}: symbolic link {path!r} has no target")
    if target.startswith("/"):
        return  # resolved inside the image's root
    level = path.count("/")  # how deep the link's own folder is
    for part in target.split("/"):
        if part == "..":
            level -= 1
            if level < 0:
                raise UnsafeEntry(f"{where}: symbolic link {path!r} -> {target!r} leaves the root")
        elif part not in ("", "."):
            level += 1
