"""The files of an OCI image layout (image-spec image-layout.md): `oci-layout`, `index.json` and
`blobs/<alg>/<encoded>`, read and written with blocking calls (run them in a worker thread).

Nothing half-written is ever visible: a blob goes to a temp file beside its final place, is
verified (size and digest), fsynced and renamed; `index.json` is rewritten the same way, under
an exclusive `flock` on the layout folder, so concurrent writers (threads or processes) never
lose each other's entries.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from dockyard.client.streams import Verifier
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.errors import DigestInvalid, PayloadTooLarge

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
BLOBS_DIR = "blobs"
LAYOUT_VERSION = "1.0.0"
REF_NAME = "org.opencontainers.image.ref.name"
TEMP_PREFIX = ".tmp-"
MAX_INDEX_SIZE = 64 * 1024 * 1024
MAX_LAYOUT_FILE_SIZE = 64 * 1024

Index = dict[str, Any]
"""`index.json` as JSON: entries keep their exact keys and order when others change."""


class LayoutInvalid(ValueError):
    """A folder (or archive) that is not a usable OCI image layout, and why."""


def blob_path(root: Path, digest: Digest) -> Path:
    """Where a blob lives in the layout at `root`: `blobs/<alg>/<encoded>`."""
    return root / BLOBS_DIR / digest.algorithm / digest.encoded


def layout_bytes() -> bytes:
    """The `oci-layout` file this package writes."""
    return json.dumps({"imageLayoutVersion": LAYOUT_VERSION}).encode()


def check_layout_file(raw: bytes, where: str) -> None:
    """Refuse an `oci-layout` file that is not JSON naming layout version 1.0.0."""
    try:
        version = json.loads(raw).get("imageLayoutVersion")
    except (ValueError, AttributeError):
        raise LayoutInvalid(f"{where}: oci-layout is not a JSON object") from None
    if version != LAYOUT_VERSION:
        raise LayoutInvalid(
            f"{where}: unsupported image layout version {version!r}, expected {LAYOUT_VERSION}"
        )


def exists(root: Path) -> bool:
    """Whether `root` holds a layout (its `oci-layout` file, checked); False when it does not."""
    try:
        raw = read_limited(root / LAYOUT_FILE, MAX_LAYOUT_FILE_SIZE)
    except FileNotFoundError:
        return False
    check_layout_file(raw, str(root))
    return True


def read_limited(path: Path, limit: int) -> bytes:
    """The bytes of a small file; `PayloadTooLarge` past `limit` (never reads more)."""
    # in pieces: read(limit + 1) would allocate the whole limit for every small file
    pieces, total = [], 0
    with path.open("rb") as handle:
        while piece := handle.read(min(1 << 20, limit + 1 - total)):
            pieces.append(piece)
            total += len(piece)
            if total > limit:
                raise PayloadTooLarge(f"{path} is larger than {limit} bytes")
    return b"".join(pieces)


def parse_index(raw: bytes, where: str) -> Index:
    """`index.json`'s JSON, refused unless it is an object with a `manifests` list of objects."""
    try:
        index = json.loads(raw)
    except ValueError as exc:
        raise LayoutInvalid(f"{where}: index.json is not valid JSON: {exc}") from None
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list) or not all(isinstance(e, dict) for e in manifests):
        raise LayoutInvalid(f"{where}: index.json has no manifests list")
    checked: Index = index
    return checked


def read_index(root: Path) -> Index:
    """The layout's `index.json`; an empty index when there is no layout yet."""
    if not exists(root):
        return empty_index()
    try:
        raw = read_limited(root / INDEX_FILE, MAX_INDEX_SIZE)
    except FileNotFoundError:
        raise LayoutInvalid(f"{root}: oci-layout is there but index.json is missing") from None
    return parse_index(raw, str(root))


def empty_index() -> Index:
    return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}


def index_bytes(index: Index) -> bytes:
    return json.dumps(index, separators=(",", ":"), ensure_ascii=False).encode()


def ref_name(entry: dict[str, Any]) -> str | None:
    annotations = entry.get("annotations")
    name = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
    return name if isinstance(name, str) else None


def find_tag(index: Index, tag: str) -> Descriptor | None:
    """The entry named `tag`; else one named `<image>:tag` (as containerd writes), like
    regclient's ocidir."""
    named = [(name, e) for e in index["manifests"] if (name := ref_name(e)) is not None]
    for suffix in (False, True):
        for name, entry in named:
            if name == tag or (suffix and name.endswith(f":{tag}")):
                return Descriptor.from_json(entry, f"index.json entry {name!r}")
    return None


def find_digest(index: Index, digest: Digest) -> Descriptor | None:
    for entry in index["manifests"]:
        if entry.get("digest") == str(digest):
            return Descriptor.from_json(entry, f"index.json entry {digest}")
    return None


def tags(index: Index) -> list[str]:
    """Every ref name that is a plain tag (not a full image name), sorted, once each."""
    return sorted({n for e in index["manifests"] if (n := ref_name(e)) and ":" not in n})


def set_tag(index: Index, tag: str, desc: Descriptor) -> None:
    """Point `tag` at `desc`: the entry named `tag` (or an untagged entry of the same digest) is
    replaced in place, duplicates dropped; otherwise the entry is appended."""
    entry = {"mediaType": desc.media_type, "digest": str(desc.digest), "size": desc.size}
    entry["annotations"] = {REF_NAME: tag}

    def replaces(e: dict[str, Any]) -> bool:
        name = ref_name(e)
        return name == tag or (name is None and e.get("digest") == entry["digest"])

    kept: list[dict[str, Any]] = []
    placed = False
    for existing in index["manifests"]:
        if not replaces(existing):
            kept.append(existing)
        elif not placed:
            kept.append(entry)
            placed = True
    if not placed:
        kept.append(entry)
    index["manifests"] = kept


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in folder `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path) -> None:
    """Create `path` and its missing parents, each durably recorded in its parent."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir()
        fsync_dir(folder.parent)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` by `data` all at once: temp file, fsync, rename, fsync of the folder."""
    tmp = path.with_name(f"{TEMP_PREFIX}{path.name}-{secrets.token_hex(8)}")
    try:
        with tmp.open("xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def ensure_layout(root: Path) -> None:
    """Create the layout's folder, `blobs/`, `index.json` and `oci-layout` when missing."""
    make_dirs(root / BLOBS_DIR)
    if not exists(root):
        # index.json first: where oci-layout is, index.json is too
        with locked(root):
            if not (root / INDEX_FILE).exists():
                write_atomic(root / INDEX_FILE, index_bytes(empty_index()))
            write_atomic(root / LAYOUT_FILE, layout_bytes())


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold an exclusive lock on the layout folder (other threads and processes wait)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def update_index(root: Path, change: Callable[[Index], bool]) -> None:
    """Read `index.json`, let `change` edit it (True: it changed) and write it back atomically,
    all under the layout's lock; `change` may write blobs too."""
    ensure_layout(root)
    with locked(root):
        index = read_index(root)
        if change(index):
            write_atomic(root / INDEX_FILE, index_bytes(index))


def write_blob(root: Path, desc: Descriptor, data: bytes) -> None:
    """Store small verified bytes (a manifest) as blob `desc`."""
    writer = BlobWriter(root, desc, f"layout {root}")
    try:
        writer.write(data)
        writer.commit()
    finally:
        writer.abort()


class BlobWriter:
    """A blob being written: to a temp file beside its final place, counted and hashed as it
    goes; it appears under its digest only when `commit` has verified it.

    `write`, `commit` and `abort` block (run them in a worker thread) and exclude each other;
    `abort` after `commit` is a no-op, so `finally: abort()` cleans up whatever failed.
    """

    def __init__(self, root: Path, desc: Descriptor, where: str) -> None:
        self.final = blob_path(root, desc.digest)
        make_dirs(self.final.parent)
        name = f"{TEMP_PREFIX}{desc.digest.encoded}-{secrets.token_hex(8)}"
        self.tmp = self.final.with_name(name)
        self.verifier = Verifier(desc, where)
        self._mutex = threading.Lock()
        self._handle: BinaryIO | None = self.tmp.open("xb")

    def write(self, data: bytes) -> None:
        """Hash and append `data`; `SizeInvalid` past the descriptor's size."""
        with self._mutex:
            handle = self._open()
            self.verifier.update(data)
            handle.write(data)

    def commit(self) -> None:
        """Verify size and digest, fsync, and rename into place; raises (and keeps nothing)
        when the bytes are not the descriptor's."""
        with self._mutex:
            handle = self._open()
            self.verifier.finish()
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            self._handle = None
            os.replace(self.tmp, self.final)
        fsync_dir(self.final.parent)

    def abort(self) -> None:
        """Drop the temp file unless the blob was committed."""
        with self._mutex:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
                self.tmp.unlink(missing_ok=True)

    def _open(self) -> BinaryIO:
        if self._handle is None:
            raise ValueError(f"the writer of {self.final.name} is closed")
        return self._handle


def read_manifest_blob(root: Path, desc: Descriptor, limit: int) -> bytes:
    """The bytes of a small blob (a manifest), verified against `desc`'s digest."""
    raw = read_limited(blob_path(root, desc.digest), limit)
    actual = Digest.of(raw, desc.digest.algorithm)
    if actual != desc.digest:
        raise DigestInvalid(
            f"layout {root}: blob {desc.digest} holds content with digest {actual}",
            {"expected": str(desc.digest), "actual": str(actual)},
        )
    return raw
