"""apk's database of what is installed (`lib/apk/db/installed`) and its world (`etc/apk/world`),
read from the base and written back as apk 2.14 writes them (apk_db_write_fdb).

The database is one record per package, sorted by name (case-insensitively first) and
version: the index fields (`C: P: V: A: S: I: T: U: L: o: m: t: c: k:`, then `D: p: i:`),
`r:`/`q:` from the package's `replaces`, then for each folder it owns `F:folder` (and
`M:uid:gid:mode` unless root's 0755) followed by its files, `R:name` (`a:uid:gid:mode` unless
root's 0644) and `Z:Q1…` (base64 of the SHA1 of the content, or of a symlink's target). The
base's records are kept as they are, byte for byte; an upgraded package's record is replaced.
The world lists the requested dependencies one a line, sorted the same way.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass, field

from dockyard.build.apk.index import ApkPackage, Dependency, records
from dockyard.build.apk.version import compare_versions

INSTALLED = "lib/apk/db/installed"
WORLD = "etc/apk/world"
_HEADER = "CPVASITULomtck"
_ALWAYS = "TUL"  # apk writes these even when empty
_DEFAULT_DIR = (0, 0, 0o755)
_DEFAULT_FILE = (0, 0, 0o644)


def q1(sha1: bytes) -> str:
    """apk's checksum notation: `Q1` + base64 of a SHA1."""
    return "Q1" + base64.b64encode(sha1).decode()


@dataclass
class Record:
    """One package of the database: the text apk wrote for it, and what it says."""

    package: ApkPackage
    text: str
    files: list[str]
    """The paths it owns (files and links), as the database lists them."""

    @property
    def sort_key(self) -> tuple[str, str]:
        return (self.package.name.lower(), self.package.name)


def read_installed(text: str) -> list[Record]:
    """The base's database, record by record."""
    found = []
    for block in records(text):
        header = [(k, v) for k, v in block if k not in "FMRaZ"]
        files, folder = [], ""
        for key, value in block:
            if key == "F":
                folder = value
            elif key == "R":
                files.append(f"{folder}/{value}" if folder else value)
        body = "".join(f"{k}:{v}\n" for k, v in block)
        found.append(Record(ApkPackage.from_fields(header), body, files))
    return found


@dataclass
class Owned:
    """What one added package owns, as its data stream listed it: folders in order of first
    appearance with their owner and mode, and each folder's files."""

    folders: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    files: dict[str, list[tuple[str, tuple[int, int, int], str]]] = field(default_factory=dict)

    def folder(self, path: str, acl: tuple[int, int, int] | None = None) -> None:
        if path not in self.folders or acl is not None:
            self.folders[path] = acl or self.folders.get(path, _DEFAULT_DIR)
        self.files.setdefault(path, [])

    def file(self, path: str, acl: tuple[int, int, int], sha1: bytes | None) -> None:
        """A file or link the package owns; `sha1` None when there is no checksum to record."""
        folder, _, name = path.rpartition("/")
        self.folder(folder)
        self.files[folder].append((name, acl, q1(sha1) if sha1 is not None else ""))

    def paths(self) -> list[str]:
        return [f"{d}/{n}" if d else n for d, names in self.files.items() for n, _, _ in names]


def new_record(package: ApkPackage, identity: str, replaces: list[str], replaces_priority: int,
               owned: Owned) -> Record:  # fmt: skip
    """The record apk writes for `package` installed from its index, owning `owned`."""
    values = dict(package.fields)
    values["C"] = identity
    lines = [
        f"{key}:{values.get(key, '')}\n" for key in _HEADER if key in _ALWAYS or values.get(key)
    ]
    for key in "Dpi":
        if values.get(key, "").strip():
            lines.append(f"{key}:{' '.join(values[key].split())}\n")
    if replaces:
        lines.append(f"r:{' '.join(replaces)}\n")
    if replaces_priority:
        lines.append(f"q:{replaces_priority}\n")
    for folder, acl in owned.folders.items():
        lines.append(f"F:{folder}\n")
        if acl != _DEFAULT_DIR:
            lines.append(_acl("M", acl))
        for name, file_acl, checksum in owned.files.get(folder, []):
            lines.append(f"R:{name}\n")
            if file_acl != _DEFAULT_FILE:
                lines.append(_acl("a", file_acl))
            if checksum:
                lines.append(f"Z:{checksum}\n")
    return Record(package, "".join(lines), owned.paths())


def _acl(key: str, acl: tuple[int, int, int]) -> str:
    uid, gid, mode = acl
    return f"{key}:{uid}:{gid}:{mode:o}\n"


def write_installed(base: list[Record], added: list[Record]) -> bytes:
    """The database with `added` (replacing the base's records of the same names), sorted as
    apk sorts it, each record followed by a blank line."""
    names = {r.package.name for r in added}
    kept = [r for r in base if r.package.name not in names]
    everything = kept + added
    # a stable sort by version, then by name: apk's (name, version) order
    everything.sort(key=functools.cmp_to_key(_by_version))
    everything.sort(key=lambda r: r.sort_key)
    return "".join(r.text + "\n" for r in everything).encode()


def _by_version(a: Record, b: Record) -> int:
    return compare_versions(a.package.version, b.package.version)


def write_world(base: bytes | None, requests: list[Dependency]) -> bytes:
    """The world with `requests` added (a request replaces the base's line for its name),
    sorted by name as apk sorts it, one a line."""
    lines: dict[str, str] = {}
    for word in (base or b"").decode("utf-8", "replace").split():
        name = word.lstrip("!")
        for stop in "<>=~@":
            name = name.split(stop, 1)[0]
        lines[name] = word
    for request in requests:
        lines[request.name] = str(request)
    ordered = sorted(lines, key=lambda n: (n.lower(), n))
    return "".join(f"{lines[name]}\n" for name in ordered).encode()
