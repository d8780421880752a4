"""What a resolver is asked and what it answers: requests (`name` or `name=version`), the
closure with a reason for every package, and errors that name the input they came from."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dockyard.build.apt.packages import Package, compare_versions
from dockyard.build.errors import Invalid

REQUEST = re.compile(r"^(?P<name>[a-z0-9][a-z0-9+.-]+)(?:=(?P<version>[^\s=]+))?$")


class ResolveError(Invalid):
    """A request that cannot be installed; `field` names the input it came from
    (`contents.packages[1]`), `detail` carries the names and versions the message gives."""

    def __init__(self, field: str, message: str, **detail: Any) -> None:
        super().__init__(field, message, **detail)
        self.reason = message


class UnknownPackage(ResolveError):
    """No index has a package (or a provider) of that name; `suggestions` are close names."""

    def __init__(self, field: str, name: str, suggestions: list[str]) -> None:
        self.name = name
        self.suggestions = suggestions
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(
            field,
            f"no package named {name!r} in the package index{hint}",
            package=name,
            suggestions=suggestions,
        )


class UnknownVersion(ResolveError):
    """The index has the package, not at that version; `available` lists the versions it has."""

    def __init__(self, field: str, name: str, version: str, available: list[str]) -> None:
        self.name, self.version, self.available = name, version, available
        super().__init__(
            field,
            f"{name} {version} is not in the package index; available: {', '.join(available)}",
            package=name,
            version=version,
            available=available,
        )


class VirtualPackage(ResolveError):
    """A virtual name that several packages provide: the user must pick one."""

    def __init__(self, field: str, name: str, providers: list[str]) -> None:
        self.name, self.providers = name, providers
        super().__init__(
            field,
            f"{name!r} is a virtual package provided by {', '.join(providers)}; name one of them",
            package=name,
            providers=providers,
        )


class Unresolvable(ResolveError):
    """The request's closure cannot be installed on this system; the message says why."""


@dataclass(frozen=True, slots=True)
class Request:
    """One requested package: a name and, optionally, the exact version wanted."""

    name: str
    version: str | None = None
    field: str = "contents.packages"

    @classmethod
    def parse(cls, text: str, field: str = "contents.packages") -> Request:
        """`name` or `name=version`, as `apt-get install` takes them."""
        match = REQUEST.match(text.strip())
        if match is None:
            raise ResolveError(field, f"{text!r} is not a package name or name=version")
        return cls(match["name"], match["version"], field)


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a package is in the closure: requested, or which package's which field pulled it."""

    kind: str
    """`requested`, `depends`, `pre-depends`, `same-source` (an installed package upgraded with
    a sibling built from the same source) or `unbreak` (an installed package upgraded because
    the old version would clash with, or depends on the old version of, `package`)."""
    package: str = ""
    """The package whose field or upgrade caused this one (empty when requested)."""
    relation: str = ""
    """The relation that caused it, as written in the control file."""

    def __str__(self) -> str:
        if self.kind == "requested":
            return f"requested as {self.relation}" if self.relation else "requested"
        if self.kind in ("depends", "pre-depends"):
            field = "Depends" if self.kind == "depends" else "Pre-Depends"
            return f"{field} of {self.package}: {self.relation}"
        if self.kind == "same-source":
            return f"upgraded with {self.package}: both are built from source {self.relation}"
        return f"upgraded for {self.package}: {self.relation}"


@dataclass(frozen=True, slots=True)
class Choice:
    """One package the closure installs, why, and the base's version it replaces (if any)."""

    package: Package
    reason: Reason
    installed: Package | None = None

    @property
    def action(self) -> str:
        """`install`, `upgrade` or `downgrade` (against the base's version)."""
        if self.installed is None:
            return "install"
        order = compare_versions(self.package.version, self.installed.version)
        return "upgrade" if order > 0 else "downgrade"


@dataclass(frozen=True, slots=True)
class Resolution:
    """The packages to add, in the order chosen, and the base's packages that were enough."""

    choices: tuple[Choice, ...]
    satisfied_by_base: tuple[Package, ...]
    """Installed packages that met a requested name or a dependency (the plan's "the base
    already has"), each once, in the order first met."""

    def versions(self) -> dict[str, str]:
        """`{name: version}` of every package to install or upgrade."""
        return {choice.package.name: choice.package.version for choice in self.choices}
