"""An OCI image layout packed as a tar (what `oci-archive:` means to skopeo), for air-gapped
transfer: `export_archive` packs a layout folder, `import_archive` unpacks one.

Both stream: a blob passes through in chunks and is hashed on the way, so neither a corrupted
layout nor a corrupted archive gets through. An archive is untrusted input: only `oci-layout`,
`index.json` and `blobs/<alg>/<encoded>` files are unpacked; an absolute path, a `..`
component, a link or a device refuses the whole archive. Unpacking goes to a staging folder
renamed into place at the end, so a refused or interrupted import leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import secrets
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import IO

from dockyard.client import layoutfs as fs
from dockyard.client.streams import CHUNK_SIZE, Verifier
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.errors import DigestInvalid, OciError

_DIRS = frozenset({"blobs"})  # plus blobs/<alg>


class ArchiveInvalid(fs.LayoutInvalid):
    """An archive that is not a safe OCI layout tar, and why."""


async def export_archive(layout_dir: Path, tar_path: Path) -> None:
    """Pack the OCI layout at `layout_dir` into the tar `tar_path` (replaced atomically), each
    blob verified against its digest as it streams in."""
    await asyncio.to_thread(_export, Path(layout_dir), Path(tar_path))


async def import_archive(tar_path: Path, layout_dir: Path) -> None:
    """Unpack the OCI layout tar `tar_path` (optionally compressed) as the new folder
    `layout_dir`, which must not exist or be empty. Raises `ArchiveInvalid` for unsafe or
    unexpected members and `DigestInvalid`/`SizeInvalid` for a blob whose bytes are wrong."""
    await asyncio.to_thread(_import, Path(tar_path), Path(layout_dir))


# --- export ----------------------------------------------------------------------------------


def _export(root: Path, tar_path: Path) -> None:
    if not fs.exists(root):
        raise fs.LayoutInvalid(f"{root} is not an OCI image layout (no oci-layout file)")
    index = fs.read_limited(root / fs.INDEX_FILE, fs.MAX_INDEX_SIZE)
    fs.parse_index(index, str(root))
    tmp = tar_path.with_name(f"{fs.TEMP_PREFIX}{tar_path.name}-{secrets.token_hex(8)}")
    try:
        with tmp.open("xb") as out:
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                _add_bytes(tar, fs.LAYOUT_FILE, fs.read_limited(root / fs.LAYOUT_FILE, 1 << 16))
                _add_bytes(tar, fs.INDEX_FILE, index)
                _add_dir(tar, fs.BLOBS_DIR)
                for algorithm, blobs in _blobs(root):
                    _add_dir(tar, f"{fs.BLOBS_DIR}/{algorithm}")
                    for digest, path in blobs:
                        _add_blob(tar, digest, path)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, tar_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fs.fsync_dir(tar_path.parent)


def _blobs(root: Path) -> list[tuple[str, list[tuple[Digest, Path]]]]:
    """The layout's blobs by algorithm, sorted (temp files and strays left out)."""
    found = []
    blobs_dir = root / fs.BLOBS_DIR
    for folder in sorted(blobs_dir.iterdir()) if blobs_dir.is_dir() else []:
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        entries = []
        for path in sorted(folder.iterdir()):
            digest = _digest_or_none(folder.name, path.name)
            if digest is not None and path.is_file() and not path.is_symlink():
                entries.append((digest, path))
        found.append((folder.name, entries))
    return found


def _info(name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    """A member header that is the same on every machine: root-owned, fixed mode, mtime 0."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.uid, info.gid, info.uname, info.gname = size, 0, 0, 0, "", ""
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    tar.addfile(_info(name + "/", directory=True))


def _add_blob(tar: tarfile.TarFile, digest: Digest, path: Path) -> None:
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        reader = _VerifyingReader(handle, Descriptor("", digest, size), f"layout blob {path}")
        tar.addfile(_info(f"{fs.BLOBS_DIR}/{digest.algorithm}/{digest.encoded}", size), reader)
        reader.verifier.finish()


class _VerifyingReader(io.RawIOBase):
    """A file read through a `Verifier` (tarfile pulls the bytes it packs from here)."""

    def __init__(self, handle: IO[bytes], desc: Descriptor, where: str) -> None:
        self.handle = handle
        self.verifier = Verifier(desc, where)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self.handle.read(size)
        if chunk:
            self.verifier.update(chunk)
        return chunk


# --- import ----------------------------------------------------------------------------------


def _import(tar_path: Path, layout_dir: Path) -> None:
    if layout_dir.exists() and (not layout_dir.is_dir() or any(layout_dir.iterdir())):
        raise FileExistsError(f"{layout_dir} exists and is not an empty folder")
    parent = layout_dir.parent
    fs.make_dirs(parent)
    staging = parent / f"{fs.TEMP_PREFIX}{layout_dir.name}-{secrets.token_hex(8)}"
    staging.mkdir()
    try:
        with tarfile.open(tar_path, mode="r|*") as tar:
            layout, index = _unpack(tar, staging, str(tar_path))
        _finish(staging, layout, index, str(tar_path))
        with contextlib.suppress(FileNotFoundError):
            layout_dir.rmdir()  # empty (checked above)
        os.rename(staging, layout_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fs.fsync_dir(parent)


def _unpack(tar: tarfile.TarFile, staging: Path, where: str) -> tuple[bytes | None, bytes | None]:
    """Write the archive's blobs to `staging` (verified); the `oci-layout` and `index.json`
    bytes it holds."""
    layout: bytes | None = None
    index: bytes | None = None
    for member in tar:
        parts = _member_parts(member, where)
        if not parts:
            continue
        if member.isdir():
            continue  # folders are made as blobs need them
        name = "/".join(parts)
        if name == fs.LAYOUT_FILE:
            layout = _small(tar, member, 1 << 16, where)
        elif name == fs.INDEX_FILE:
            index = _small(tar, member, fs.MAX_INDEX_SIZE, where)
        elif parts[0] == fs.BLOBS_DIR:
            _unpack_blob(tar, member, parts, staging, where)
        # any other top-level file (docker's manifest.json, repositories) is not ours: skipped
    return layout, index


def _member_parts(member: tarfile.TarInfo, where: str) -> tuple[str, ...]:
    """The member's path components, refusing absolute paths, `..`, links and devices."""
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or "\\" in member.name:
        raise ArchiveInvalid(
            f"{where}: member {member.name!r} would be unpacked outside the layout"
        )
    if not (member.isfile() or member.isdir()):
        raise ArchiveInvalid(
            f"{where}: member {member.name!r} is a link or special file; an OCI layout archive "
            "holds only files and folders"
        )
    parts = tuple(p for p in path.parts if p != ".")
    if member.isfile() and len(parts) > 1 and parts[0] != fs.BLOBS_DIR:
        raise ArchiveInvalid(f"{where}: unexpected member {member.name!r}")
    if member.isdir() and parts and parts[0] not in _DIRS:
        raise ArchiveInvalid(f"{where}: unexpected folder {member.name!r}")
    return parts


def _small(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int, where: str) -> bytes:
    if member.size > limit:
        raise ArchiveInvalid(f"{where}: {member.name!r} is larger than {limit} bytes")
    source = tar.extractfile(member)
    assert source is not None  # a regular file
    return source.read()


def _unpack_blob(
    tar: tarfile.TarFile, member: tarfile.TarInfo, parts: tuple[str, ...], staging: Path, where: str
) -> None:
    digest = _digest_or_none(*parts[1:]) if len(parts) == 3 else None
    if digest is None:
        raise ArchiveInvalid(
            f"{where}: {member.name!r} is not a blob path (blobs/<algorithm>/<encoded digest>)"
        )
    source = tar.extractfile(member)
    assert source is not None
    desc = Descriptor("", digest, member.size)
    writer = fs.BlobWriter(staging, desc, f"{where}: {member.name}")
    try:
        while chunk := source.read(CHUNK_SIZE):
            writer.write(chunk)
        writer.commit()
    finally:
        writer.abort()


def _finish(staging: Path, layout: bytes | None, index: bytes | None, where: str) -> None:
    """Check the unpacked layout is whole, then write its `oci-layout` and `index.json`."""
    if layout is None:
        raise ArchiveInvalid(f"{where}: no oci-layout file: not an OCI layout archive")
    fs.check_layout_file(layout, where)
    if index is None:
        raise ArchiveInvalid(f"{where}: no index.json: not an OCI layout archive")
    for entry in fs.parse_index(index, where)["manifests"]:
        try:
            desc = Descriptor.from_json(entry, "index.json entry")
        except OciError as exc:
            raise ArchiveInvalid(f"{where}: {exc.message}") from None
        path = fs.blob_path(staging, desc.digest)
        if not path.is_file() or path.stat().st_size != desc.size:
            raise ArchiveInvalid(
                f"{where}: index.json names {desc.digest} ({desc.size} bytes), which the "
                "archive does not hold"
            )
    fs.make_dirs(staging / fs.BLOBS_DIR)
    fs.write_atomic(staging / fs.LAYOUT_FILE, layout)
    fs.write_atomic(staging / fs.INDEX_FILE, index)


def _digest_or_none(algorithm: str, encoded: str) -> Digest | None:
    try:
        return Digest.parse(f"{algorithm}:{encoded}")
    except DigestInvalid:
        return None
