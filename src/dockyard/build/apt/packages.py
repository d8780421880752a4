"""Binary packages as Debian's indexes and dpkg's database describe them: `Package` records and
the `Installed` set (the candidate `PackageIndex` is in candidates.py).

Speed is the point of the shapes here: a full `Packages` index (bookworm main: 63k stanzas,
50 MB) is read with one split per stanza and per line (python-debian's `Deb822` takes about 7x
longer), only the fields a resolver or a lock needs are kept, and relation fields stay text until
a resolver asks for them (python-debian's `PkgRelation`, parsed once per distinct text).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from debian.deb822 import PkgRelation
from debian.debian_support import Version

PRIORITIES = {"required": 1, "important": 2, "standard": 3, "optional": 4, "extra": 5}
"""apt's order of `Priority` (lower is preferred among providers); a missing one counts as 0."""

NOT_INSTALLED = frozenset({"not-installed", "config-files"})
"""dpkg states (the third word of `Status`) in which a package is not on the system."""


@dataclass(frozen=True, slots=True)
class Relation:
    """One alternative of a relation field: `name[:arch] [(op version)]`."""

    name: str
    arch: str | None = None
    """The qualifier after `:` (`any`, `native` or an architecture), or None."""
    op: str | None = None
    """One of `<<`, `<=`, `=`, `>=`, `>>`, or None for any version."""
    version: str | None = None

    def __str__(self) -> str:
        name = f"{self.name}:{self.arch}" if self.arch else self.name
        return f"{name} ({self.op} {self.version})" if self.op else name

    def allows(self, version: str) -> bool:
        """Whether `version` meets this relation's version constraint."""
        if self.op is None or self.version is None:
            return True
        return version_satisfies(version, self.op, self.version)


Alternatives = tuple[Relation, ...]
"""An or-group (`a | b`): satisfied when any one of them is."""
Relations = tuple[Alternatives, ...]
"""A relation field: every or-group must hold."""


def format_alternatives(group: Alternatives) -> str:
    """An or-group written as in a control file: `a (>= 1) | b`."""
    return " | ".join(str(relation) for relation in group)


@functools.lru_cache(maxsize=1 << 16)
def parse_relations(text: str) -> Relations:
    """A relation field's text as or-groups; identical texts (many `libc6 (>= 2.34)`) share one
    parse. Architecture lists and build profiles (source packages only) are dropped."""
    if not text:
        return ()
    groups = []
    for group in PkgRelation.parse_relations(text):
        alternatives = []
        for item in group:
            op, version = item["version"] or (None, None)
            alternatives.append(Relation(item["name"], item["archqual"], op, version))
        groups.append(tuple(alternatives))
    return tuple(groups)


@functools.lru_cache(maxsize=1 << 16)
def debian_version(text: str) -> Version:
    """A parsed Debian version, cached: a resolver compares the same few versions many times."""
    return Version(text)


def compare_versions(a: str, b: str) -> int:
    """Debian's order of two versions (`dpkg --compare-versions`): -1, 0 or 1."""
    if a == b:
        return 0
    va, vb = debian_version(a), debian_version(b)
    return -1 if va < vb else (1 if va > vb else 0)


def version_satisfies(version: str, op: str, wanted: str) -> bool:
    """Whether `version op wanted` holds (`op` as in a relation: `<<`, `<=`, `=`, `>=`, `>>`)."""
    order = compare_versions(version, wanted)
    if op == "=":
        return order == 0
    if op == ">=":
        return order >= 0
    if op == "<=":
        return order <= 0
    if op == ">>":
        return order > 0
    if op == "<<":
        return order < 0
    raise ValueError(f"unknown relation operator {op!r}")


RELATION_FIELDS = (
    "pre-depends",
    "depends",
    "conflicts",
    "breaks",
    "recommends",
    "suggests",
    "replaces",
    "enhances",
    "provides",
)
"""The relation fields kept as text, in the order apt's cache reads them (it numbers packages
in the order they are first named, which breaks ties between providers)."""


@dataclass(frozen=True, slots=True)
class Package:
    """One version of one binary package, from an index stanza or a dpkg database entry."""

    name: str
    version: str
    architecture: str
    multi_arch: str = "no"
    essential: bool = False
    important: bool = False
    """`Important: yes` or `Protected: yes`: apt prefers such providers."""
    priority: str = ""
    section: str = ""
    source: str = ""
    """The source package's name (the package's own name when the stanza has no `Source`)."""
    source_version: str = ""
    installed_size: int = 0
    """In KiB, as `Installed-Size` says."""
    filename: str = ""
    """The `.deb`'s path under the repository's root (index stanzas only)."""
    size: int = 0
    sha256: str = ""
    status: str = ""
    """dpkg's `Status` (`install ok installed`) for a database entry; empty in an index."""
    origin: str = ""
    """Where the stanza was read: an index's address or a database path."""
    pre_depends_text: str = ""
    depends_text: str = ""
    conflicts_text: str = ""
    breaks_text: str = ""
    recommends_text: str = ""
    suggests_text: str = ""
    replaces_text: str = ""
    enhances_text: str = ""
    provides_text: str = ""

    @classmethod
    def from_fields(cls, fields: Mapping[str, str], origin: str = "") -> Package:
        """A package from a stanza's fields (keys in any case, as `Deb822` or `stanzas` give)."""
        if not all(key.islower() for key in fields):
            fields = {key.lower(): value.strip() for key, value in fields.items()}
        return _from_lower(fields, origin)

    def __str__(self) -> str:
        return f"{self.name} {self.version} ({self.architecture})"

    @property
    def pre_depends(self) -> Relations:
        """`Pre-Depends`, parsed."""
        return parse_relations(self.pre_depends_text)

    @property
    def depends(self) -> Relations:
        """`Depends`, parsed."""
        return parse_relations(self.depends_text)

    @property
    def recommends(self) -> Relations:
        """`Recommends`, parsed (a resolver with `--no-install-recommends` ignores them)."""
        return parse_relations(self.recommends_text)

    @property
    def conflicts(self) -> Relations:
        """`Conflicts`, parsed."""
        return parse_relations(self.conflicts_text)

    @property
    def breaks(self) -> Relations:
        """`Breaks`, parsed."""
        return parse_relations(self.breaks_text)

    @property
    def replaces(self) -> Relations:
        """`Replaces`, parsed."""
        return parse_relations(self.replaces_text)

    @property
    def provides(self) -> tuple[Relation, ...]:
        """`Provides`, parsed; a versioned one carries `op` `=` and its version."""
        return tuple(group[0] for group in parse_relations(self.provides_text))

    @property
    def priority_rank(self) -> int:
        """apt's number for `Priority` (required 1 … extra 5; 0 when absent)."""
        return PRIORITIES.get(self.priority.lower(), 0)

    @property
    def is_installed(self) -> bool:
        """Whether a dpkg database entry is on the system (not removed, not only its conffiles)."""
        words = self.status.split()
        return len(words) == 3 and words[2] not in NOT_INSTALLED


def _from_lower(fields: Mapping[str, str], origin: str) -> Package:
    """`Package.from_fields` for stripped values under lower-case keys (what `stanzas` yields):
    the path taken 63k times for one index, so plain `get`s and no per-field work."""
    get = fields.get
    name, version = get("package", ""), get("version", "")
    if not name or not version:
        raise ValueError(f"a stanza in {origin or 'the index'} lacks Package or Version")
    source, source_version = _source(get("source", ""), name, version)
    return Package(
        name,
        version,
        get("architecture", ""),
        get("multi-arch", "no").lower(),
        get("essential", "") == "yes",
        get("important", "") == "yes" or get("protected", "") == "yes",
        get("priority", ""),
        get("section", ""),
        source,
        source_version,
        _int(get("installed-size", "")),
        get("filename", ""),
        _int(get("size", "")),
        get("sha256", ""),
        get("status", ""),
        origin,
        get("pre-depends", ""),
        get("depends", ""),
        get("conflicts", ""),
        get("breaks", ""),
        get("recommends", ""),
        get("suggests", ""),
        get("replaces", ""),
        get("enhances", ""),
        get("provides", ""),
    )


def _source(field: str, name: str, version: str) -> tuple[str, str]:
    """`Source: name (version)` → (name, version); absent parts default to the binary's."""
    if not field:
        return name, version
    source, _, rest = field.partition(" ")
    rest = rest.strip()
    if rest.startswith("(") and rest.endswith(")"):
        return source, rest[1:-1].strip()
    return source, version


def _int(text: str) -> int:
    return int(text) if text.isdigit() else 0


def stanzas(text: str) -> Iterator[dict[str, str]]:
    """The stanzas of a deb822 text (`Packages`, dpkg `status`): lower-case field names, values
    stripped, continuation lines kept after a newline; comment lines skipped."""
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.split("\n"):
            if not line:
                continue
            first = line[0]
            if first == " " or first == "\t":
                if key:
                    fields[key] += "\n" + line
                continue
            if first == "#":
                continue
            name, _, value = line.partition(":")
            key = name.lower()
            fields[key] = value.strip()
        if fields:
            yield fields


def read_packages(text: str, origin: str = "") -> list[Package]:
    """Every stanza of a `Packages` index (or a `status` file) as a `Package`, in file order."""
    return [Package.from_fields(fields, origin) for fields in stanzas(text)]


_NAMES = re.compile(r"(?:^|[,|])\s*([a-z0-9][a-z0-9+.-]*)")
"""The package names of a relation field, in order (qualifiers and versions left out)."""


class Installed:
    """What a dpkg database says is on the system, by name (the target architecture's packages
    and `all`; entries removed or left as conffiles only are not installed)."""

    def __init__(self, packages: Iterable[Package], architecture: str) -> None:
        self.architecture = architecture
        self._by_name: dict[str, Package] = {}
        self._providers: dict[str, list[tuple[Package, Relation]]] = {}
        for package in packages:
            if not package.is_installed or package.architecture not in (architecture, "all"):
                continue
            self._by_name[package.name] = package
            for relation in package.provides:
                self._providers.setdefault(relation.name, []).append((package, relation))

    @classmethod
    def read(cls, path: Path, architecture: str) -> Installed:
        """The database at `path`: a `status` file, or a `status.d/` folder of one stanza file
        per package (distroless images; `*.md5sums` beside them are skipped)."""
        return cls(read_status(path), architecture)

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Package]:
        return iter(self._by_name.values())

    def get(self, name: str) -> Package | None:
        """The installed version of `name`, if any."""
        return self._by_name.get(name)

    def providers(self, name: str) -> list[tuple[Package, Relation]]:
        """The installed packages whose `Provides` names `name`."""
        return list(self._providers.get(name, ()))


def read_status(path: Path) -> list[Package]:
    """Every entry of a dpkg database: a `status` file or a `status.d/` folder."""
    if path.is_dir():
        packages = []
        for entry in sorted(os.listdir(path)):
            if entry.endswith(".md5sums") or entry.startswith("."):
                continue
            text = (path / entry).read_text(encoding="utf-8")
            for fields in stanzas(text):
                # distroless writes entries without `Status`: present means installed.
                fields.setdefault("status", "install ok installed")
                packages.append(Package.from_fields(fields, str(path / entry)))
        return packages
    return read_packages(path.read_text(encoding="utf-8"), str(path))
