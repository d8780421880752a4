"""The dpkg database of a base, extended as dpkg itself would extend it for packages unpacked
without it: the status stanza (dpkg's field order, dependency fields in dpkg's spelling),
`info/<pkg>.list`, `.md5sums` and `.conffiles`, in the form the base uses — one
`var/lib/dpkg/status` file, or distroless's `var/lib/dpkg/status.d/<pkg>` files.

Functions over bytes and names only: the caller reads the base's files and writes the result
into a layer. `Recorder` gathers, while a layer writer consumes a `.deb`'s entries, what the
database needs (every path in archive order, the MD5 of every file).
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO

from debian.deb822 import Deb822

from dockyard.build.apt.deb import DebControl, DebEntry

ADMIN = "var/lib/dpkg"
STATUS = f"{ADMIN}/status"
STATUS_D = f"{ADMIN}/status.d"
INFO = f"{ADMIN}/info"

# dpkg's lib/dpkg/parse.c `fieldinfos`: the order dpkg writes a stanza's known fields in;
# any other field follows, in the package's own order
FIELD_ORDER = (
    "Package", "Essential", "Protected", "Status", "Priority", "Section", "Installed-Size",
    "Origin", "Maintainer", "Bugs", "Architecture", "Multi-Arch", "Source", "Version",
    "Config-Version", "Replaces", "Provides", "Depends", "Pre-Depends", "Recommends",
    "Suggests", "Breaks", "Conflicts", "Enhances", "Conffiles", "Filename", "Size", "MD5sum",
    "MSDOS-Filename", "Description", "Triggers-Pending", "Triggers-Awaited",
)  # fmt: skip
DEPENDENCY_FIELDS = frozenset(FIELD_ORDER[15:24])
_DEFAULT_NO = {"Essential", "Protected"}  # written only when "yes"
_RELATION = re.compile(
    r"^\s*([^\s(:]+)(?::(\S+?))?\s*(?:\(\s*(<<|<=|>=|>>|=|<|>)\s*([^)\s]+)\s*\))?\s*$"
)
_OPERATORS = {"<": "<=", ">": ">="}  # dpkg reads the obsolete forms as these


class DatabaseForm(enum.Enum):
    """Where a base keeps its package records."""

    STATUS = "status"  # one file, as dpkg writes it (Debian, Ubuntu)
    STATUS_D = "status.d"  # a file per package (distroless), read by Trivy and syft


class DatabaseError(Exception):
    """A package record that cannot be written (a dependency field dpkg would refuse, a file
    whose digest was never taken)."""


def detect_form(paths: Iterable[str]) -> DatabaseForm:
    """The form a base's file names show (relative to its root): `status` when the file is
    there (dpkg reads only it), else `status.d` when that folder has entries, else `status`."""
    names = {path.lstrip("/").removeprefix("./") for path in paths}
    if STATUS in names:
        return DatabaseForm.STATUS
    if any(name.startswith(f"{STATUS_D}/") for name in names):
        return DatabaseForm.STATUS_D
    return DatabaseForm.STATUS


@dataclass
class InstalledPackage:
    """What dpkg records about one unpacked package: its control member, every data path in
    archive order (relative, no leading `/`), and the MD5 of each file."""

    control: DebControl
    paths: list[str] = field(default_factory=list)
    md5: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)  # regular files and hard links, in order

    @property
    def name(self) -> str:
        """The name dpkg files its info under: `pkg`, or `pkg:arch` when `Multi-Arch: same`."""
        fields = self.control.fields
        if fields.get("Multi-Arch", "").strip() == "same":
            return f"{fields['Package']}:{fields['Architecture']}"
        return fields["Package"]


class Recorder:
    """Collects an `InstalledPackage` while a layer writer consumes a `.deb`'s entries: pass
    each entry through `track` and read the stream it returns to its end."""

    def __init__(self, control: DebControl) -> None:
        self.package = InstalledPackage(control)

    def track(self, entry: DebEntry) -> DebEntry:
        """The same entry, its stream hashed (MD5) as it is read; its path recorded."""
        self.package.paths.append(entry.path)
        if entry.info.islnk():
            self.package.files.append(entry.path)
            target = entry.info.linkname
            if target in self.package.md5:
                self.package.md5[entry.path] = self.package.md5[target]
        elif entry.stream is not None:
            self.package.files.append(entry.path)
            reader = _Md5Reader(entry.stream, entry.path, entry.info.size, self)
            return DebEntry(entry.path, entry.info, reader)  # type: ignore[arg-type]
        return entry

    def finish(self) -> InstalledPackage:
        """The record; `DatabaseError` when a file's stream was not read to its end."""
        unread = [path for path in self.package.files if path not in self.package.md5]
        if unread:
            raise DatabaseError(f"{self.package.name}: {unread[0]} was not read to its end")
        return self.package


class _Md5Reader:
    """A file stream that records its MD5 once its last byte is read (a tar writer reads
    exactly the size, never the empty read after it)."""

    def __init__(self, stream: IO[bytes], path: str, size: int, recorder: Recorder) -> None:
        self._stream = stream
        self._path = path
        self._left = size
        self._recorder = recorder
        self._hasher = hashlib.md5(usedforsecurity=False)
        if size == 0:
            self._done()

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if data:
            self._hasher.update(data)
            self._left -= len(data)
            if self._left <= 0:
                self._done()
        return data

    def _done(self) -> None:
        self._recorder.package.md5[self._path] = self._hasher.hexdigest()


def status_stanza(package: InstalledPackage) -> bytes:
    """The package's stanza as dpkg writes it in `status` once it is installed and configured."""
    fields = dict(package.control.fields)
    fields["Status"] = "install ok installed"
    conffiles = [path for path in package.control.conffiles if path.lstrip("/") in package.md5]
    if conffiles:
        fields["Conffiles"] = "".join(
            f"\n {path} {package.md5[path.lstrip('/')]}" for path in conffiles
        )
    for name in DEPENDENCY_FIELDS & fields.keys():
        fields[name] = normalize_relations(fields[name], f"{package.name} {name}")
    for name in _DEFAULT_NO & fields.keys():
        if fields[name].strip() != "yes":
            del fields[name]
    if fields.get("Multi-Arch", "").strip() == "no":
        del fields["Multi-Arch"]
    known = [name for name in FIELD_ORDER if name in fields]
    others = [name for name in fields if name not in FIELD_ORDER]
    lines = []
    for name in known + others:
        value = fields[name]
        lines.append(f"{name}:{value}" if value.startswith("\n") else f"{name}: {value.strip()}")
    return ("\n".join(lines) + "\n").encode()


def normalize_relations(value: str, where: str) -> str:
    """A dependency field as dpkg writes it back: `a (>= 1) | b, c:any`."""
    groups = []
    for group in value.replace("\n", " ").split(","):
        if not group.strip():
            continue
        alternatives = []
        for alternative in group.split("|"):
            match = _RELATION.match(alternative)
            if match is None:
                raise DatabaseError(f"{where}: {alternative.strip()!r} is not a relation")
            name, arch, operator, version = match.groups()
            text = f"{name}:{arch}" if arch else name
            if operator:
                text += f" ({_OPERATORS.get(operator, operator)} {_version(version)})"
            alternatives.append(text)
        groups.append(" | ".join(alternatives))
    return ", ".join(groups)


def _version(version: str) -> str:
    """dpkg drops a zero epoch unless the rest has a colon (its "non-ambiguous" form)."""
    if version.startswith("0:") and ":" not in version[2:]:
        return version[2:]
    return version


def list_file(package: InstalledPackage) -> bytes:
    """`info/<pkg>.list`: `/.`, then every path of the package in archive order."""
    return "".join(["/.\n", *(f"/{path}\n" for path in package.paths)]).encode()


def md5sums_file(package: InstalledPackage) -> bytes:
    """`info/<pkg>.md5sums`: the package's own, or (as dpkg does when it ships none) one line
    per file in archive order, conffiles included."""
    if package.control.md5sums is not None:
        return package.control.md5sums
    return "".join(f"{package.md5[path]}  {path}\n" for path in package.files).encode()


def package_files(package: InstalledPackage, form: DatabaseForm) -> dict[str, bytes]:
    """The files one package adds to the database, by path relative to the root (without the
    `status` file itself: `status_file` makes that, for every package at once)."""
    files = {f"{INFO}/{package.name}.list": list_file(package)}
    if form is DatabaseForm.STATUS_D:
        files[f"{STATUS_D}/{package.control.package}"] = status_stanza(package)
        files[f"{STATUS_D}/{package.control.package}.md5sums"] = md5sums_file(package)
        return files
    files[f"{INFO}/{package.name}.md5sums"] = md5sums_file(package)
    if "conffiles" in package.control.files:
        files[f"{INFO}/{package.name}.conffiles"] = package.control.files["conffiles"]
    return files


def status_file(base: bytes, added: Sequence[InstalledPackage]) -> bytes:
    """The new `status`: the base's stanzas byte for byte, the added packages' stanzas among
    them sorted by name then architecture as dpkg keeps them (a package the base already
    lists under the same name and architecture is replaced)."""
    entries: dict[tuple[str, str], bytes] = {}
    for stanza in re.split(rb"\n\s*\n", base.strip(b"\n")):
        if stanza.strip():
            entries[_key(stanza)] = stanza + b"\n"
    for package in added:
        stanza = status_stanza(package)
        entries[_key(stanza)] = stanza
    return b"".join(entries[key] + b"\n" for key in sorted(entries))


def _key(stanza: bytes) -> tuple[str, str]:
    fields = Deb822(stanza.decode("utf-8", "replace"))
    return fields.get("Package", ""), fields.get("Architecture", "")


def database_files(
    form: DatabaseForm, base_status: bytes | None, added: Sequence[InstalledPackage]
) -> dict[str, bytes]:
    """Every file to add or replace in the base for `added`: each package's files, and for the
    `status` form the whole new status file (`base_status`: the base's, or None for none)."""
    files: dict[str, bytes] = {}
    for package in added:
        files.update(package_files(package, form))
    if form is DatabaseForm.STATUS:
        files[STATUS] = status_file(base_status or b"", added)
    return files
