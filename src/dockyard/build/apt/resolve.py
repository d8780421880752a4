"""The packages apt would add to a system: `apt-get install --no-install-recommends` without apt.

`resolve` follows apt 2.6's own marking (`pkgDepCache::MarkInstall`) so that the closure is the
one apt computes for the same indexes and the same dpkg database (a test holds it to that on
real packages):

- every requested package is marked first, then their dependencies are followed depth first,
  `Pre-Depends` before `Depends`, each or-group in field order; `Recommends` and `Suggests` are
  not followed;
- an or-group that an installed or already chosen package satisfies needs nothing; otherwise
  every alternative's candidate (the highest version in any index) and every candidate that
  provides it (a versioned dependency only by a versioned `Provides`) is a solution, in apt's
  order: the ones whose package is installed (an upgrade) first, then within each alternative
  the user's own requests, the real package before providers, `Essential`, `Important`, a
  better `Priority`, and the package apt's cache numbers last; the first solution whose own
  closure can be installed wins;
- `:any` is met by `Multi-Arch: allowed` packages (apt's implicit provides), `:native` and the
  target architecture by the target's packages and `all`;
- an installed package that a dependency needs in a newer version is upgraded, as apt does;
  so are the installed packages built from the same source at the same version
  (`APT::Get::Upgrade-By-Source-Package`) and installed packages whose dependencies the upgrade
  would break or whose `Conflicts`/`Breaks` a new package hits, when their candidate is free of
  the problem.

Where apt would remove an installed package (a conflict that no upgrade settles), this resolver
refuses: a customization adds layers and never takes anything out of the base. The error names
the packages and the field. Where apt would keep one conflicting choice and later repair the
other, this one tries the next alternative instead.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from dockyard.build.apt.candidates import PackageIndex
from dockyard.build.apt.packages import (
    Alternatives,
    Installed,
    Package,
    Relation,
    compare_versions,
    format_alternatives,
)
from dockyard.build.apt.resolution import (
    Choice,
    Reason,
    Request,
    Resolution,
    UnknownPackage,
    UnknownVersion,
    Unresolvable,
    VirtualPackage,
)


class _Failed(Exception):
    """A package cannot be marked; the message says why (internal: alternatives are tried)."""


def resolve(
    requests: Sequence[Request | str],
    index: PackageIndex,
    installed: Installed,
) -> Resolution:
    """What `apt-get install --no-install-recommends REQUESTS` would install on a system with
    `installed`, from `index`; raises a `ResolveError` naming the request's field."""
    wanted = [
        r if isinstance(r, Request) else Request.parse(r, f"contents.packages[{i}]")
        for i, r in enumerate(requests)
    ]
    return _Resolver(index, installed).run(wanted)


class _Resolver:
    def __init__(self, index: PackageIndex, installed: Installed) -> None:
        self.index = index
        self.installed = installed
        self.arch = index.architecture
        self.pinned: dict[str, Package] = {}
        self.marked: dict[str, Package] = {}
        self.order: list[str] = []
        self.reasons: dict[str, Reason] = {}
        self.provided: dict[str, list[Package]] = {}
        self.requested: set[str] = set()
        self.base_used: dict[str, Package] = {}
        self._installed_claims: dict[str, list[tuple[Package, str, Relation]]] | None = None

    def run(self, requests: list[Request]) -> Resolution:
        targets: list[tuple[Request, Package]] = []
        settles: list[list[tuple[Package, Reason]]] = []
        for request in requests:
            package = self._requested(request)
            if package is not None and all(p.name != package.name for _, p in targets):
                targets.append((request, package))
        # apt marks every requested package before following any dependency, so an or-group
        # that one request satisfies never pulls another alternative.
        for request, package in targets:
            try:
                settle = self._conflict_upgrades(package)
            except _Failed as failed:
                raise Unresolvable(request.field, str(failed)) from None
            self._mark(package, Reason("requested", relation=_request_text(request)))
            settles.append(settle)
        for (request, package), settle in zip(targets, settles, strict=True):
            try:
                for candidate, why in settle:
                    self._install(candidate, why)
                self._upgrade_siblings(package)
                self._upgrade_dependents(package)
                self._install_dependencies(package)
            except _Failed as failed:
                raise Unresolvable(
                    request.field, f"cannot install {package.name}: {failed}"
                ) from None
        self._verify_base()
        choices = tuple(
            Choice(self.marked[name], self.reasons[name], self.installed.get(name))
            for name in self.order
        )
        return Resolution(choices, tuple(self.base_used.values()))

    # -- requests --------------------------------------------------------------------------

    def _requested(self, request: Request) -> Package | None:
        """The version a request names (None: the base already has it)."""
        name, field = request.name, request.field
        versions = self.index.versions(name)
        have = self.installed.get(name)
        if not versions and have is None:
            providers = sorted({p.name for p, _ in self.index.providers(name)})
            if not providers:
                raise UnknownPackage(field, name, self.index.close_matches(name))
            if request.version is not None:
                raise UnknownVersion(field, name, request.version, [])
            if len(providers) > 1:
                raise VirtualPackage(field, name, providers)
            # apt: "Note, selecting 'mawk' instead of 'awk'" when exactly one provides it.
            return self._requested(Request(providers[0], None, field))
        if request.version is not None:
            package = self.index.version(name, request.version)
            if package is None and have is not None and have.version == request.version:
                package = have
            if package is None:
                raise UnknownVersion(field, name, request.version, [p.version for p in versions])
            self.pinned[name] = package
        else:
            package = self._candidate(name)
            assert package is not None
        self.requested.add(name)
        if have is not None and have.version == package.version:
            self.base_used.setdefault(name, have)
            return None
        return package

    # -- state ------------------------------------------------------------------------------

    def _candidate(self, name: str) -> Package | None:
        """apt's candidate: a pinned request, else the highest of the indexes and the base."""
        if name in self.pinned:
            return self.pinned[name]
        best = self.index.candidate(name)
        have = self.installed.get(name)
        if have is not None and (best is None or compare_versions(have.version, best.version) >= 0):
            return have
        return best

    def _current(self, name: str) -> Package | None:
        """The version of `name` on the system once the marks so far are installed."""
        return self.marked.get(name) or self.installed.get(name)

    def _mark(self, package: Package, reason: Reason) -> None:
        self.marked[package.name] = package
        self.order.append(package.name)
        self.reasons[package.name] = reason
        for relation in package.provides:
            self.provided.setdefault(relation.name, []).append(package)

    def _rollback(self, size: int) -> None:
        for name in self.order[size:]:
            package = self.marked.pop(name)
            del self.reasons[name]
            for relation in package.provides:
                self.provided[relation.name].remove(package)
        del self.order[size:]

    # -- relations ---------------------------------------------------------------------------

    def _arch_ok(self, package: Package, relation: Relation) -> bool:
        """Whether `package` can meet `relation`'s architecture qualifier."""
        if relation.arch is None or relation.arch in ("native", self.arch):
            return True
        if relation.arch == "any":
            return package.multi_arch == "allowed"
        return False

    def _meets(self, package: Package, relation: Relation) -> bool:
        """Whether `package` (by its name or one of its provides) meets `relation`."""
        return self._meets_by_name(package, relation) or self._meets_by_provides(package, relation)

    def _present(self, name: str) -> Iterable[Package]:
        """The packages on the future system named `name` or providing it."""
        current = self._current(name)
        if current is not None:
            yield current
        for package, _ in self.installed.providers(name):
            if self._current(package.name) is package:
                yield package
        for package in self.provided.get(name, ()):
            if self.marked.get(package.name) is package:
                yield package

    def _satisfier(self, group: Alternatives) -> Package | None:
        """A package on the future system that meets the or-group, if any."""
        for relation in group:
            for package in self._present(relation.name):
                if self._meets(package, relation):
                    return package
        return None

    def _meets_by_name(self, package: Package, relation: Relation) -> bool:
        return (
            package.name == relation.name
            and self._arch_ok(package, relation)
            and relation.allows(package.version)
        )

    def _meets_by_provides(self, package: Package, relation: Relation) -> bool:
        # apt: an unversioned Provides never meets a versioned dependency.
        if not self._arch_ok(package, relation):
            return False
        return any(
            provided.name == relation.name
            and (
                relation.op is None
                or (provided.version is not None and relation.allows(provided.version))
            )
            for provided in package.provides
        )

    # -- choosing ---------------------------------------------------------------------------

    def _install_dependencies(self, package: Package) -> None:
        """Follow `Pre-Depends` then `Depends`, each or-group in order, depth first."""
        for kind, groups in (("pre-depends", package.pre_depends), ("depends", package.depends)):
            for group in groups:
                have = self._satisfier(group)
                if have is None:
                    self._satisfy(package, kind, group)
                elif self.installed.get(have.name) is have:
                    self.base_used.setdefault(have.name, have)

    def _satisfy(self, package: Package, kind: str, group: Alternatives) -> None:
        text = format_alternatives(group)
        field = "Depends" if kind == "depends" else "Pre-Depends"
        solutions = self._solutions(group)
        if not solutions:
            raise _Failed(
                f"{package.name} {package.version} {field}: {text}, {self._available(group)}"
            )
        reason = Reason(kind, package.name, text)
        failures = []
        for solution in solutions:
            try:
                self._install(solution, reason)
                return
            except _Failed as failed:
                failures.append(f"{solution.name} {solution.version}: {failed}")
        raise _Failed(f"{package.name} {package.version} {field}: {text}; " + "; ".join(failures))

    def _solutions(self, group: Alternatives) -> list[Package]:
        """The candidates that would meet an or-group, in the order apt tries them."""
        upgrades: list[Package] = []
        new: list[Package] = []
        for relation in group:
            found = []
            candidate = self._candidate(relation.name)
            if candidate is not None and self._meets_by_name(candidate, relation):
                found.append(candidate)
            for provider in self._provider_candidates(relation.name):
                if provider is not candidate and self._meets_by_provides(provider, relation):
                    found.append(provider)
            found.sort(key=functools.partial(self._preference, target=relation.name))
            for package in found:
                (upgrades if package.name in self.installed else new).append(package)
        solutions: list[Package] = []
        for package in upgrades + new:
            if package not in solutions:
                solutions.append(package)
        return solutions

    def _provider_candidates(self, name: str) -> list[Package]:
        """The candidates whose `Provides` names `name` (apt: only a package's candidate)."""
        found = []
        for package, _ in self.index.providers(name) + self.installed.providers(name):
            candidate = self._candidate(package.name)
            if (
                candidate is not None
                and candidate.version == package.version
                and candidate not in found
            ):
                found.append(candidate)
        for package in self.pinned.values():
            if package not in found and any(p.name == name for p in package.provides):
                found.append(package)
        return found

    def _preference(
        self, package: Package, target: str
    ) -> tuple[bool, bool, bool, bool, bool, bool, int, int]:
        """apt's `CompareProviders` as a sort key (smaller is tried first)."""
        have = package.name in self.installed
        return (
            package.name not in self.requested,
            not (package.multi_arch == "same" and have),
            not have,
            package.name != target,
            not package.essential,
            not package.important,
            package.priority_rank,
            -self.index.rank(package.name),
        )

    def _available(self, group: Alternatives) -> str:
        """What the indexes and the base offer for an or-group that nothing can meet."""
        parts = []
        for relation in group:
            versions = [p.version for p in self.index.versions(relation.name)]
            have = self.installed.get(relation.name)
            if versions:
                parts.append(f"the index has {relation.name} {', '.join(versions)}")
            elif self.index.providers(relation.name):
                names = sorted({p.name for p, _ in self.index.providers(relation.name)})
                parts.append(
                    f"{relation.name} is provided by {', '.join(names)} (not in that version)"
                )
            else:
                parts.append(f"no package named or providing {relation.name} is in the index")
            if have is not None:
                parts.append(f"the base has {have.name} {have.version}")
        return "but " + "; ".join(parts)

    # -- marking ----------------------------------------------------------------------------

    def _install(self, package: Package, reason: Reason) -> None:
        """Mark `package` and its closure, or leave every mark as it was and raise `_Failed`."""
        chosen = self.marked.get(package.name)
        if chosen is not None:
            if chosen.version == package.version:
                return
            raise _Failed(
                f"{package.name} {chosen.version} is already chosen ({self.reasons[package.name]})"
            )
        have = self.installed.get(package.name)
        if have is not None and have.version == package.version:
            self.base_used.setdefault(have.name, have)
            return
        size = len(self.order)
        try:
            settle = self._conflict_upgrades(package)
            self._mark(package, reason)
            for candidate, why in settle:
                self._install(candidate, why)
            self._upgrade_siblings(package)
            self._upgrade_dependents(package)
            self._install_dependencies(package)
        except _Failed:
            self._rollback(size)
            raise

    # -- what an install does to the base --------------------------------------------------

    def _conflict_upgrades(self, package: Package) -> list[tuple[Package, Reason]]:
        """Installed packages to upgrade so that `package` clashes with nothing (apt's way), or
        `_Failed` when a clash with a chosen package, or one that no upgrade settles, remains."""
        settle: dict[str, tuple[Package, Reason]] = {}
        for kind, relation in _negatives(package):
            for other in list(self._present(relation.name)):
                if other.name != package.name and self._meets(other, relation):
                    declared = f"{package.name} {package.version} {kind}: {relation}"
                    settle.setdefault(other.name, self._settle(other, package, declared))
        for name in (package.name, *(p.name for p in package.provides)):
            for other, kind, relation in self._claims(name):
                if other.name == package.name or self._current(other.name) is not other:
                    continue
                if self._meets(package, relation):
                    declared = f"{other.name} {other.version} {kind}: {relation}"
                    settle.setdefault(other.name, self._settle(other, package, declared))
        return list(settle.values())

    def _settle(self, other: Package, package: Package, declared: str) -> tuple[Package, Reason]:
        if self.marked.get(other.name) is other:
            raise _Failed(
                f"{declared}, and {other.name} {other.version} is chosen "
                f"({self.reasons[other.name]})"
            )
        candidate = self._candidate(other.name)
        if (
            candidate is not None
            and candidate.version != other.version
            and not _clash(candidate, package, self)
        ):
            return candidate, Reason("unbreak", package.name, declared)
        raise _Failed(
            f"{declared}, and the base has {other.name} {other.version}: apt would remove it, "
            "a customization never removes a package from its base"
        )

    def _claims(self, name: str) -> list[tuple[Package, str, Relation]]:
        """`Conflicts` and `Breaks` on `name` declared by installed or chosen packages."""
        if self._installed_claims is None:
            self._installed_claims = {}
            for package in self.installed:
                for kind, relation in _negatives(package):
                    self._installed_claims.setdefault(relation.name, []).append(
                        (package, kind, relation)
                    )
        found = list(self._installed_claims.get(name, ()))
        for package in self.marked.values():
            found.extend((package, kind, r) for kind, r in _negatives(package) if r.name == name)
        return found

    def _upgrade_siblings(self, package: Package) -> None:
        """apt's `Upgrade-By-Source-Package`: installed packages built from the same source are
        upgraded to the candidate built from the same source version (failures ignored, as apt)."""
        for other in self.installed:
            if (
                other.source != package.source
                or other.name == package.name
                or other.name in self.marked
            ):
                continue
            candidate = self._candidate(other.name)
            if candidate is None or candidate.version == other.version:
                continue
            if candidate.source_version != package.source_version:
                continue
            try:
                self._install(candidate, Reason("same-source", package.name, package.source))
            except _Failed:
                continue

    def _upgrade_dependents(self, package: Package) -> None:
        """Upgrading an installed package upgrades the installed packages whose dependency on
        it the new version no longer meets; `_Failed` when one has no newer version that helps."""
        have = self.installed.get(package.name)
        if have is None or have.version == package.version:
            return
        for other in self.installed:
            if self._current(other.name) is not other:
                continue
            for kind, group in _positives(other):
                broken = [
                    r
                    for r in group
                    if r.name == package.name
                    and self._meets_by_name(have, r)
                    and not self._meets_by_name(package, r)
                ]
                if not broken:
                    continue
                declared = f"{other.name} {other.version} {kind}: {format_alternatives(group)}"
                candidate = self._candidate(other.name)
                if candidate is not None and candidate.version != other.version:
                    self._install(candidate, Reason("unbreak", package.name, declared))
                elif self._satisfier(group) is None:
                    raise _Failed(
                        f"{package.name} {package.version} would break {declared} "
                        f"and the index has no other version of {other.name}"
                    )

    def _verify_base(self) -> None:
        """Refuse a closure that leaves a dependency of the base unmet that was met before."""
        for other in self.installed:
            if self._current(other.name) is not other:
                continue
            for kind, group in _positives(other):
                if self._satisfier(group) is None and self._met_by_base(group):
                    raise Unresolvable(
                        "contents.packages",
                        f"the packages would break {other.name} {other.version} of the base: "
                        f"{kind}: {format_alternatives(group)} would no longer be met",
                    )

    def _met_by_base(self, group: Alternatives) -> bool:
        for relation in group:
            have = self.installed.get(relation.name)
            if have is not None and self._meets(have, relation):
                return True
            if any(self._meets(p, relation) for p, _ in self.installed.providers(relation.name)):
                return True
        return False


def _negatives(package: Package) -> list[tuple[str, Relation]]:
    return [("Conflicts", r) for g in package.conflicts for r in g] + [
        ("Breaks", r) for g in package.breaks for r in g
    ]


def _positives(package: Package) -> list[tuple[str, Alternatives]]:
    return [("Pre-Depends", g) for g in package.pre_depends] + [
        ("Depends", g) for g in package.depends
    ]


def _clash(a: Package, b: Package, resolver: _Resolver) -> bool:
    """Whether either package's `Conflicts` or `Breaks` hits the other."""
    return any(resolver._meets(b, r) for _, r in _negatives(a)) or any(
        resolver._meets(a, r) for _, r in _negatives(b)
    )


def _request_text(request: Request) -> str:
    return f"{request.name}={request.version}" if request.version else ""
