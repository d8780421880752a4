"""The files artifact images contribute to a customization, as Docker's hardened images
define it: nothing by default; `includes` select paths (each with everything under it),
`excludes` remove paths from what was selected; several artifacts apply in order, a later one
overriding an earlier one; each artifact's image is the one for the build's platform.

An artifact's layers are streamed once each, its own whiteouts applied (`Tree`), and the bytes
of the selected files are appended to a `Spool` file on disk as they go by, so any number of
files of any size costs no memory; the entries read their bytes back from the spool in any
order the layer writer wants. Modes, owners and links are kept as the artifact has them.
Parent directories above an include are added (as the artifact has them) only where the base
lacks them, so an artifact never changes the mode or owner of a base directory it merely
passes through.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import IO

from dockyard.build.entries import Entry, Kind, clean_path, file_range, is_within, parent_of
from dockyard.build.errors import Invalid
from dockyard.build.model import Artifact, split_reference
from dockyard.build.rootfs import RootFS, image_for_platform
from dockyard.build.tarstream import DataSink, read_layer
from dockyard.build.tree import Tree
from dockyard.client.target import Target
from dockyard.oci.descriptor import Platform
from dockyard.oci.digest import Digest
from dockyard.oci.reference import Reference


@dataclass(frozen=True)
class ArtifactSource:
    """One item of `contents.artifacts`: an image and the paths it contributes; `field` is
    where it stands in the customization (`contents.artifacts[0]`), for error messages."""

    reference: Reference
    includes: tuple[str, ...]
    excludes: tuple[str, ...] = ()
    field: str = "contents.artifacts[0]"


def sources_of(artifacts: Sequence[Artifact], registry: str) -> list[ArtifactSource]:
    """The `contents.artifacts` of a customization as sources in `registry`."""
    sources = []
    for i, artifact in enumerate(artifacts):
        repository, tag, digest = split_reference(artifact.name)
        ref = Reference(registry, repository, tag, Digest.parse(digest) if digest else None)
        where = f"contents.artifacts[{i}]"
        sources.append(
            ArtifactSource(ref, tuple(artifact.includes), tuple(artifact.excludes), where)
        )
    return sources


@dataclass(frozen=True)
class ArtifactFiles:
    """What one artifact contributes: `entries` sorted by path, how many files (anything but
    a directory) and bytes, and the base paths it would overwrite (the plan warns of them:
    allowed, but they may break the image)."""

    source: ArtifactSource
    digest: Digest
    """The platform image of the artifact that was read (for the build's lock)."""
    entries: tuple[Entry, ...]
    files: int
    bytes: int
    overwrites: tuple[str, ...]


class Spool:
    """One file on disk that selected files' bytes are appended to while layers stream; the
    entries' openers read their ranges back. Valid until `close` (which removes it)."""

    def __init__(self, directory: Path | str | None = None) -> None:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (lives as long as the spool)
            prefix="artifacts-", suffix=".spool", dir=directory, delete=False
        )
        self.path = Path(handle.name)
        self._handle: IO[bytes] = handle
        self.size = 0

    def sink(self, on_close: _OnSpooled) -> DataSink:
        """A sink that appends a file's bytes and reports their offset when they are all in."""
        return _SpoolSink(self, self.size, on_close)

    def flush(self) -> None:
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def append(self, data: memoryview) -> None:
        """Add bytes at the end (called from the worker thread a layer streams in)."""
        self._handle.write(data)
        self.size += len(data)


class _OnSpooled:
    """Puts the spooled file's opener into its tree entry, if that entry is still the one."""

    def __init__(self, tree: Tree, entry: Entry, path: Path) -> None:
        self.tree, self.entry, self.path = tree, entry, path

    def __call__(self, offset: int) -> None:
        node = self.tree.node(self.entry.path)
        if node is not None and node.entry is self.entry:
            node.entry = replace(self.entry, data=file_range(self.path, offset, self.entry.size))


@dataclass
class _SpoolSink:
    spool: Spool
    offset: int
    on_close: _OnSpooled

    def write(self, data: memoryview) -> None:
        self.spool.append(data)

    def close(self) -> None:
        self.on_close(self.offset)


@dataclass(frozen=True)
class _Selection:
    includes: tuple[str, ...]
    excludes: tuple[str, ...]

    def __contains__(self, path: str) -> bool:
        return any(is_within(path, top) for top in self.includes) and not any(
            is_within(path, top) for top in self.excludes
        )

    def parents(self) -> set[str]:
        """The directories above the includes (not the root)."""
        found: set[str] = set()
        for include in self.includes:
            path = parent_of(include)
            while path:
                found.add(path)
                path = parent_of(path)
        return found


async def artifact_files(
    target: Target,
    sources: Sequence[ArtifactSource],
    platform: Platform,
    base: RootFS,
    spool: Spool,
) -> list[ArtifactFiles]:
    """What each artifact of `sources` contributes on `platform`, in order (see `merge` for
    the one layer of them all). `Invalid` naming the field: an include absent from the
    artifact, a platform it lacks, a path no layer can hold."""
    return [await _one(target, source, platform, base, spool) for source in sources]


def merge(artifacts: Sequence[ArtifactFiles]) -> list[Entry]:
    """The entries of all `artifacts` as one layer: a later artifact's entry replaces an
    earlier one's at the same path (and a non-directory what the earlier had under it)."""
    tree = Tree()
    for layer, artifact in enumerate(artifacts):
        for entry in artifact.entries:
            tree.put(entry, layer)
    return [node.entry for path in tree.under() if (node := tree.node(path)) is not None]


async def _one(
    target: Target, source: ArtifactSource, platform: Platform, base: RootFS, spool: Spool
) -> ArtifactFiles:
    selection = _Selection(_paths(source, "includes"), _paths(source, "excludes"))
    if not selection.includes:
        raise Invalid(
            f"{source.field}.includes",
            f"artifact {source.reference} contributes only the paths its includes name, and "
            "there are none: name at least one path",
        )
    manifest = await image_for_platform(
        target, source.reference, platform, field=source.field, what=f"artifact {source.reference}"
    )
    tree = Tree()
    parents = selection.parents()
    for layer, desc in enumerate(manifest.blobs[1:]):

        def handle(entry: Entry, layer: int = layer) -> DataSink | None:
            path = entry.path
            if _is_whiteout(path):
                tree.apply(entry, layer)  # whatever it names, it may hide a selected path
                return None
            if path not in selection and path not in parents:
                return None
            tree.apply(entry, layer)
            if entry.kind == Kind.FILE and path in selection:
                return spool.sink(_OnSpooled(tree, entry, spool.path))
            return None

        await read_layer(target, source.reference, desc, handle)
    spool.flush()
    for index, include in enumerate(selection.includes):
        if include not in tree and next(tree.under(include), None) is None:
            raise Invalid(
                f"{source.field}.includes[{index}]",
                f"artifact {source.reference} ({platform}) has no /{include}: include paths "
                "the artifact holds (after its own whiteouts)",
                path="/" + include,
            )
    entries = _entries(source, tree, selection, parents, base)
    files = [entry for entry in entries if entry.kind != Kind.DIR]
    return ArtifactFiles(
        source,
        manifest.digest,
        tuple(entries),
        len(files),
        sum(entry.size for entry in files),
        _overwrites(entries, base),
    )


def _is_whiteout(path: str) -> bool:
    return path.rpartition("/")[2].startswith(".wh.")


def _paths(source: ArtifactSource, name: str) -> tuple[str, ...]:
    cleaned = []
    for index, text in enumerate(getattr(source, name)):
        try:
            cleaned.append(clean_path(text))
        except ValueError as exc:
            raise Invalid(
                f"{source.field}.{name}[{index}]", f"{exc}: name a path in the image"
            ) from None
    return tuple(cleaned)


def _entries(
    source: ArtifactSource, tree: Tree, selection: _Selection, parents: set[str], base: RootFS
) -> list[Entry]:
    entries: list[Entry] = []
    selected: set[str] = set()
    for path in sorted(parents):
        if base.entry(path, follow=False) is None:
            node = tree.node(path)
            kept = node.entry if node is not None and node.entry.kind == Kind.DIR else None
            entries.append(kept or Entry.directory(path))
    for path in tree.under():
        node = tree.node(path)
        if node is None or path not in selection:
            continue
        entry = node.entry
        if entry.kind == Kind.OTHER:
            raise Invalid(
                f"{source.field}.includes",
                f"artifact {source.reference} has a device or FIFO at /{path}: an artifact may "
                "contribute files, directories and links only (exclude it)",
                path="/" + path,
            )
        selected.add(path)
        entries.append(entry)
    for entry in entries:
        if entry.kind == Kind.HARDLINK and entry.link not in selected:
            raise Invalid(
                f"{source.field}.excludes",
                f"artifact {source.reference}: /{entry.path} is a hard link to /{entry.link}, "
                "which is not selected: include it too, or exclude the link",
                path="/" + entry.path,
            )
    return sorted(entries, key=lambda entry: entry.path)


def _overwrites(entries: Sequence[Entry], base: RootFS) -> tuple[str, ...]:
    """Base paths the entries replace: anything but a directory over a directory, and base
    links or files where the entries need a directory (a symlinked `/lib` would become a
    directory, hiding what it pointed to)."""
    found: set[str] = set()
    checked: set[str] = set()
    for entry in entries:
        old = base.entry(entry.path, follow=False)
        if old is not None and not (old.kind == Kind.DIR and entry.kind == Kind.DIR):
            found.add(entry.path)
        parent = parent_of(entry.path)
        while parent and parent not in checked:
            checked.add(parent)
            above = base.entry(parent, follow=False)
            if above is not None and above.kind != Kind.DIR:
                found.add(parent)
            parent = parent_of(parent)
    return tuple("/" + path for path in sorted(found))
