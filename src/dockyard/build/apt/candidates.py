"""The candidate `PackageIndex` over located `Packages` files (scan.py): what apt would install
for a name, read from the few stanzas a resolver asks about."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path

from dockyard.build.apt.packages import Package, Relation, debian_version
from dockyard.build.apt.scan import IndexFile, open_index, scan

UNNAMED = 1 << 96
"""The rank of a name no index mentions (above every mentioned one, as apt numbers it last)."""

LOOKUP_PASSES = 4
"""How many times over `rank` may search the indexes name by name before numbering them all."""

_Ref = tuple[int, int]
"""A stanza: (which index, which stanza of it)."""


class PackageIndex:
    """The packages that can be installed on one architecture, from one or several indexes (a
    suite and its -updates and -security): every version by name, the candidate (the highest
    version, apt's default pin), and who provides a virtual name. Stanzas become `Package`
    records when asked for."""

    def __init__(self, files: Sequence[tuple[str, IndexFile]], architecture: str) -> None:
        """`(origin, scanned index)` pairs, in order of precedence."""
        self.architecture = architecture
        self._files = list(files)
        self._wanted = (architecture, "all")
        versions: dict[str, dict[str, _Ref]] = {}
        for number, (_, file) in enumerate(self._files):
            for stanza, (name, version, arch) in enumerate(
                zip(file.names, file.versions, file.architectures, strict=True)
            ):
                if arch in self._wanted:
                    # The same version in two indexes is one version; the first named wins.
                    versions.setdefault(name, {}).setdefault(version, (number, stanza))
        # Most names have one version: sort (and parse versions) only where there are several.
        self._versions: dict[str, list[_Ref]] = {
            name: list(found.values())
            if len(found) == 1
            else [
                ref
                for _, ref in sorted(
                    found.items(), key=lambda item: debian_version(item[0]), reverse=True
                )
            ]
            for name, found in versions.items()
        }
        self._parsed: dict[_Ref, Package] = {}
        self._provides: dict[str, list[_Ref]] | None = None
        self._ranks: dict[str, int] = {}
        self._searched = 0  # bytes read by `rank`'s searches

    @classmethod
    def from_texts(cls, texts: Iterable[tuple[str, str]], architecture: str) -> PackageIndex:
        """An index from `(origin, Packages text)` pairs, in order of precedence."""
        return cls([(origin, scan(text.encode("utf-8"))) for origin, text in texts], architecture)

    @classmethod
    def from_files(cls, files: Iterable[tuple[str, Path]], architecture: str) -> PackageIndex:
        """An index from `(origin, Packages file)` pairs, in order of precedence; the files
        must not change while it is used (the verified cache's never do)."""
        return cls([(origin, open_index(path)) for origin, path in files], architecture)

    def __len__(self) -> int:
        return len(self._versions)

    def __contains__(self, name: object) -> bool:
        return name in self._versions

    def names(self) -> Iterable[str]:
        """Every real package name in the index."""
        return self._versions.keys()

    def candidate(self, name: str) -> Package | None:
        """The version apt would install for `name`: the highest one in any index."""
        found = self._versions.get(name)
        return self._package(found[0]) if found else None

    def versions(self, name: str) -> list[Package]:
        """Every version of `name` in the indexes, highest first."""
        return [self._package(ref) for ref in self._versions.get(name, ())]

    def version(self, name: str, version: str) -> Package | None:
        """The package `name` at exactly `version`, if an index has it."""
        for number, stanza in self._versions.get(name, ()):
            if self._files[number][1].versions[stanza] == version:
                return self._package((number, stanza))
        return None

    def providers(self, name: str) -> list[tuple[Package, Relation]]:
        """The candidates whose `Provides` names `name`, with the provide (its version, if any)."""
        found: list[tuple[Package, Relation]] = []
        for ref in self._provided().get(name, ()):
            package = self._package(ref)
            found.extend(
                (package, relation) for relation in package.provides if relation.name == name
            )
        return found

    def close_matches(self, name: str, count: int = 5) -> list[str]:
        """The names (real or provided) closest to `name`, for an error message."""
        pool = list(self._versions) + [n for n in self._provided() if n not in self._versions]
        return difflib.get_close_matches(name, pool, n=count, cutoff=0.6)

    def rank(self, name: str) -> int:
        """apt's order of package numbers for `name`: its cache numbers names as the indexes
        first name them (as a package or in a relation) and prefers the higher number when
        nothing else decides between providers. Numbers compare as apt's do; they are not
        consecutive (a name's first mention is looked up when asked, not every name counted)."""
        if name not in self._ranks:
            self._ranks[name] = self._first_mention(name)
        return self._ranks[name]

    def _first_mention(self, name: str) -> int:
        # A name is looked for in the text where it occurs; once those searches have read the
        # indexes LOOKUP_PASSES times over (many providers to order), every name is numbered
        # in one pass. Both give the same numbers.
        bulk = self._searched > LOOKUP_PASSES * sum(len(f.data) for _, f in self._files)
        before = 0  # stanzas of the indexes before this one
        for _, file in self._files:
            if bulk:
                found = file.mentions(self._wanted).get(name)
            else:
                found, searched = file.first_mention(name, self._wanted)
                self._searched += searched
            if found is not None:
                stanza, within = found
                return ((before + stanza) << 40) + within
            before += len(file.starts)
        return UNNAMED

    def _package(self, ref: _Ref) -> Package:
        package = self._parsed.get(ref)
        if package is None:
            origin, file = self._files[ref[0]]
            package = self._parsed[ref] = file.package(ref[1], origin)
        return package

    def _provided(self) -> dict[str, list[_Ref]]:
        # Only candidates provide (apt: a package's candidate version), in the order names
        # first appear.
        if self._provides is None:
            self._provides = {}
            for refs in self._versions.values():
                number, stanza = refs[0]
                for provided in self._files[number][1].provides.get(stanza, ()):
                    self._provides.setdefault(provided, []).append(refs[0])
        return self._provides
