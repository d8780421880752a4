"""An .apk read in process: three gzip streams — signature, control (`.PKGINFO` and scripts),
data (the files) — checked as apk checks them, then the data's entries read as a stream.

`verify` holds the file to its index entry and the trusted keys: the control stream's SHA1 is
the index's `C:` (the package's identity), the signature signs the control stream, and the
control's `datahash` (SHA256 of the data stream) binds the data. A package of the old form
without `datahash` is signed, and identified, over control and data together, as apk reads it.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from cryptography.hazmat.primitives import hashes

from dockyard.build.apk.signature import (
    Keys,
    choose_signature,
    digest_of,
    read_members,
    tar_files,
)
from dockyard.build.errors import InputRejected

PKGINFO = ".PKGINFO"
SCRIPTS = (".pre-install", ".post-install", ".pre-upgrade", ".post-upgrade", ".pre-deinstall",
           ".post-deinstall", ".trigger")  # fmt: skip
CHECKSUM_HEADER = "APK-TOOLS.checksum.SHA1"


@dataclass
class Control:
    """What the control stream says: `.PKGINFO` lines and which scripts it carries."""

    info: list[tuple[str, str]]
    scripts: list[str]
    data_offset: int
    """Where the data stream starts in the file."""

    def get(self, key: str) -> list[str]:
        """Every value of `key` in `.PKGINFO` (`depend` and `replaces` may repeat)."""
        return [value for k, value in self.info if k == key]


def read_pkginfo(text: str) -> list[tuple[str, str]]:
    """`.PKGINFO`'s `key = value` lines (comments skipped)."""
    lines = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(" = ")
        if sep:
            lines.append((key.strip(), value))
    return lines


def verify(path: Path, keys: Keys, identity: bytes, where: str) -> Control:
    """Check the .apk at `path` against its index's identity (`C:`, a SHA1) and the trusted
    `keys`; `InputRejected` naming `where` for anything that does not hold. Blocking."""
    with path.open("rb") as handle:
        signature_member, control = read_members(handle, 2, where)
        signature = choose_signature(tar_files(signature_member.content, where), keys, where)
        files = tar_files(control.content, where)
        names = [name for name, _ in files]
        if PKGINFO not in names:
            raise InputRejected(f"{where}: no .PKGINFO in its control stream")
        info = read_pkginfo(dict(files)[PKGINFO].decode("utf-8", "replace"))
        scripts = [name for name in names if name in SCRIPTS]
        data_offset = control.offset + control.length
        hashes_ = [value for key, value in info if key == "datahash"]
        if hashes_:
            control_sha1 = digest_of(handle, control.offset, control.length, hashes.SHA1)
            signed = (
                control_sha1
                if signature.algorithm is hashes.SHA1
                else digest_of(handle, control.offset, control.length, signature.algorithm)
            )
            _same_identity(control_sha1, identity, where)
            signature.verify(signed, where)
            data = digest_of(handle, data_offset, None, hashes.SHA256)
            if data.hex() != hashes_[0].strip().lower():
                raise InputRejected(
                    f"{where}: its data stream's SHA256 is {data.hex()}, its signed control "
                    f"says {hashes_[0]} (tampered with, or a broken mirror)"
                )
        else:
            both = digest_of(handle, control.offset, None, hashes.SHA1)
            _same_identity(both, identity, where)
            signature.verify(digest_of(handle, control.offset, None, signature.algorithm), where)
        return Control(info, scripts, data_offset)


def _same_identity(actual: bytes, expected: bytes, where: str) -> None:
    if actual != expected:
        raise InputRejected(
            f"{where}: its control checksum is not the C: of the signed index (tampered "
            "with, or a broken mirror)"
        )


@dataclass
class DataEntry:
    """One member of the data stream, and the stream of its bytes for a regular file."""

    info: tarfile.TarInfo
    stream: IO[bytes] | None = None
    checksum: str = ""
    """The `APK-TOOLS.checksum.SHA1` abuild recorded (hex), if any."""
    extra: dict[str, str] = field(default_factory=dict)


def data_entries(path: Path, control: Control, where: str) -> Iterator[DataEntry]:
    """The data stream's members in order (a file's stream is valid until the next one).
    Blocking; the file is read once, in pieces."""
    with path.open("rb") as raw:
        raw.seek(control.data_offset)
        try:
            with (
                gzip.GzipFile(fileobj=raw, mode="rb") as inflated,
                tarfile.open(fileobj=inflated, mode="r|") as tar,
            ):
                for info in tar:
                    stream = tar.extractfile(info) if info.isfile() else None
                    checksum = info.pax_headers.get(CHECKSUM_HEADER, "")
                    yield DataEntry(info, stream, checksum)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise InputRejected(f"{where}: its data stream cannot be read: {exc}") from None


class HashingReader:
    """Reads through `inner`, hashing with SHA1 what passes (a file's `Z:` in apk's database)."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.sha1 = hashlib.sha1()

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.sha1.update(data)
        return data
