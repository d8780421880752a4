"""The packages `apk add` would install on a base: requests resolved over `D:` (names, `so:`
and `cmd:` provides, versioned constraints), `i:` install_if, `!` conflicts, against what the
base's database has (a name or provide it already meets is left alone; a version it does not
meet is upgraded, unless that breaks one of the base's packages).

Among packages that could meet a dependency, the one chosen is the package of that very name
at its highest version, else the provider with the highest `k:` priority (then name, then
version) — apk's preferences for a fresh install. A request naming a virtual that several
packages provide without a priority to tell them apart must name one of them, as with apk.
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cmp_to_key

from dockyard.build.apk.index import ApkFormatError, ApkPackage, Dependency
from dockyard.build.apk.version import compare_versions
from dockyard.build.apt.resolution import (
    ResolveError,
    UnknownPackage,
    UnknownVersion,
    Unresolvable,
    VirtualPackage,
)

FIELD = "contents.packages"


@dataclass(frozen=True)
class Choice:
    """A package to install, why, and the base's package of that name it replaces (if any)."""

    package: ApkPackage
    reason: str
    installed: ApkPackage | None = None

    @property
    def action(self) -> str:
        if self.installed is None:
            return "install"
        order = compare_versions(self.package.version, self.installed.version)
        return "upgrade" if order > 0 else "downgrade"


@dataclass
class Resolution:
    """The closure in the order chosen, the base's packages that were enough, the requests."""

    choices: list[Choice]
    satisfied_by_base: list[ApkPackage]
    requests: list[Dependency]


def _newer(a: ApkPackage, b: ApkPackage) -> int:
    return compare_versions(b.version, a.version)


def _newest_first(packages: Iterable[ApkPackage]) -> list[ApkPackage]:
    return sorted(packages, key=cmp_to_key(_newer))


@dataclass
class _Set:
    """Packages by name and the names they provide (with the version provided)."""

    by_name: dict[str, list[ApkPackage]] = field(default_factory=dict)
    providers: dict[str, list[tuple[ApkPackage, str | None]]] = field(default_factory=dict)

    def add(self, package: ApkPackage) -> None:
        self.by_name.setdefault(package.name, []).append(package)
        for provided in package.provides:
            self.providers.setdefault(provided.name, []).append((package, provided.version))

    def remove(self, name: str) -> None:
        for package in self.by_name.pop(name, []):
            for provided in package.provides:
                entries = self.providers.get(provided.name, [])
                entries[:] = [(p, ver) for p, ver in entries if p is not package]

    def meeting(self, dep: Dependency) -> list[ApkPackage]:
        """The packages here that meet `dep` (by name or by what they provide)."""
        found = [p for p in self.by_name.get(dep.name, []) if dep.accepts(p.version, p.checksum)]
        found += [p for p, ver in self.providers.get(dep.name, []) if dep.accepts(ver)]
        return found


class Resolver:
    """Resolves requests over the indexes' packages against the base's."""

    def __init__(self, available: Sequence[ApkPackage], installed: Sequence[ApkPackage]) -> None:
        self.index = _Set()
        for package in available:
            self.index.add(package)
        for name, packages in self.index.by_name.items():
            self.index.by_name[name] = _newest_first(packages)
        self.installed = {p.name: p for p in installed}
        self.final = _Set()
        for package in installed:
            self.final.add(package)
        self.chosen: dict[str, Choice] = {}
        self.from_base: dict[str, ApkPackage] = {}

    def resolve(self, requests: Sequence[str]) -> Resolution:
        parsed = []
        queue: deque[tuple[Dependency, str, str]] = deque()
        for i, text in enumerate(requests):
            where = f"{FIELD}[{i}]"
            try:
                dep = Dependency.parse(text.strip())
            except ApkFormatError as exc:
                raise ResolveError(where, f"{exc}") from None
            if dep.conflict:
                raise ResolveError(where, f"{text!r}: a conflict cannot be added; name a package")
            parsed.append(dep)
            queue.append((dep, "requested", where))
        self._drain(queue)
        while self._install_if():
            pass
        self._check_conflicts()
        return Resolution(list(self.chosen.values()), list(self.from_base.values()), parsed)

    def _drain(self, queue: deque[tuple[Dependency, str, str]]) -> None:
        while queue:
            dep, reason, where = queue.popleft()
            if dep.conflict:
                continue  # checked once the closure is known
            met = self.final.meeting(dep)
            if met:
                for package in met:
                    if package.name not in self.chosen and package.name not in self.from_base:
                        self.from_base[package.name] = package
                continue
            package = self._best(dep, where, requested=reason == "requested")
            self._choose(package, reason, where)
            for child in package.depends:
                queue.append((child, f"D: of {package.name}: {child}", where))

    def _choose(self, package: ApkPackage, reason: str, where: str) -> None:
        if package.name in self.chosen:
            raise Unresolvable(
                where,
                f"{package.name} is needed at {package.version} ({reason}) and at "
                f"{self.chosen[package.name].package.version} "
                f"({self.chosen[package.name].reason}): no version meets both",
                package=package.name,
            )
        installed = self.installed.get(package.name)
        if installed is not None:
            self._check_upgrade(installed, package, where)
            self.final.remove(package.name)
        self.final.add(package)
        self.chosen[package.name] = Choice(package, reason, installed)

    def _check_upgrade(self, old: ApkPackage, new: ApkPackage, where: str) -> None:
        """Refuse an upgrade that a base package's own dependencies do not allow."""
        names = {old.name, *(p.name for p in old.provides)}
        for package in self.installed.values():
            if package.name == old.name or package.name in self.chosen:
                continue
            for dep in package.depends:
                if dep.name not in names or dep.conflict:
                    continue
                offers = [new.version] if dep.name == new.name else [
                    p.version for p in new.provides if p.name == dep.name
                ]  # fmt: skip
                if not any(dep.accepts(version) for version in offers):
                    raise Unresolvable(
                        where,
                        f"{new.name} {new.version} would replace the base's {old.version}, "
                        f"which the base's {package.name} needs ({dep})",
                        package=new.name,
                    )

    def _best(self, dep: Dependency, where: str, *, requested: bool) -> ApkPackage:
        named = self.index.by_name.get(dep.name, [])
        meeting = [p for p in named if dep.accepts(p.version, p.checksum)]
        if meeting:
            return meeting[0]
        providers = [p for p, ver in self.index.providers.get(dep.name, []) if dep.accepts(ver)]
        if not providers:
            if named or dep.name in self.installed:
                wanted = str(dep).removeprefix(dep.name)
                raise UnknownVersion(where, dep.name, wanted, [p.version for p in named])
            if dep.name in self.index.providers:
                raise Unresolvable(where, f"no package provides {dep}", package=dep.name)
            if requested:
                raise UnknownPackage(where, dep.name, self._closest(dep.name))
            raise Unresolvable(where, f"nothing in the indexes provides {dep}", package=dep.name)
        providers.sort(key=lambda p: (-p.provider_priority, p.name))
        top = providers[0]
        rivals = sorted({p.name for p in providers if p.provider_priority == top.provider_priority})
        if requested and len(rivals) > 1:
            raise VirtualPackage(where, dep.name, rivals)
        return _newest_first(p for p in providers if p.name == top.name)[0]

    def _closest(self, name: str) -> list[str]:
        return difflib.get_close_matches(name, list(self.index.by_name), n=5, cutoff=0.6)

    def _install_if(self) -> bool:
        """Add one package whose `i:` conditions the closure now meets (as apk pulls in
        `-doc` or `-openrc` companions); True if it did."""
        for name, packages in sorted(self.index.by_name.items()):
            if name in self.chosen or name in self.installed:
                continue
            package = packages[0]
            if not package.install_if:
                continue
            met = [self.final.meeting(dep) for dep in package.install_if if not dep.conflict]
            if all(met) and any(p.name in self.chosen for found in met for p in found):
                where = FIELD
                reason = f"i: {' '.join(str(d) for d in package.install_if)}"
                self._choose(package, reason, where)
                self._drain(
                    deque((d, f"D: of {package.name}: {d}", where) for d in package.depends)
                )
                return True
        return False

    def _check_conflicts(self) -> None:
        everything = [p for packages in self.final.by_name.values() for p in packages]
        for package in everything:
            for dep in package.depends:
                if not dep.conflict:
                    continue
                clash = [p for p in self.final.meeting(dep) if p.name != package.name]
                new = package.name in self.chosen or any(p.name in self.chosen for p in clash)
                if clash and new:
                    raise Unresolvable(
                        FIELD,
                        f"{package.name} {package.version} conflicts with {clash[0].name} "
                        f"{clash[0].version} ({dep})",
                        package=package.name,
                    )


def resolve(
    requests: Sequence[str], available: Sequence[ApkPackage], installed: Sequence[ApkPackage]
) -> Resolution:
    """The closure of `requests` on a base that has `installed`."""
    return Resolver(available, installed).resolve(requests)
