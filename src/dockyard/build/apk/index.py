"""APKINDEX and installed-database records: packages and their dependencies as apk reads them.

A record is a block of `X:value` lines (blank lines between blocks). The fields a build uses:
`C:` the package's identity (`Q1` + base64 of the SHA1 of its control segment), `P:` name,
`V:` version, `A:` architecture, `S:` size of the .apk, `I:` installed size, `T:` description,
`D:` dependencies, `p:` what it provides (`so:libz.so.1=1.3.1`, `cmd:curl=8.9.1-r0`, a
virtual name), `i:` install_if, `k:` provider priority, `r:` replaces. Dependencies are
`[!]name[op version]` (`!` a conflict), as apk_blob_pull_dep reads them.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from dockyard.build.apk import version as v

_BLANK = re.compile(r"\n[ \t]*\n")
_DEPENDENCY = re.compile(
    r"^(?P<conflict>!?)(?P<name>[^<>=~!\s]+)(?:(?P<op>[<>=~]+)(?P<version>\S+))?$"
)


class ApkFormatError(ValueError):
    """A record or a dependency that does not follow apk's format."""


@dataclass(frozen=True, slots=True)
class Dependency:
    """`[!]name[op version]`: `mask` holds the outcomes `op` accepts (`version.ANY` without
    one; `version.CONFLICT` set for `!`)."""

    name: str
    mask: int = v.ANY
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> Dependency:
        match = _DEPENDENCY.match(text)
        if match is None or "@" in match["name"]:
            raise ApkFormatError(f"{text!r} is not a dependency apk reads (name, name>=1.0, !name)")
        mask = v.ANY
        if match["op"]:
            mask = v.operator_mask(match["op"])
            checksum = mask & v.CHECKSUM == v.CHECKSUM
            if not mask or (not checksum and not v.is_valid(match["version"])):
                raise ApkFormatError(f"{text!r}: {match['op']}{match['version']} is not a version")
        if match["conflict"]:
            mask |= v.CONFLICT
        return cls(match["name"], mask, match["version"])

    @property
    def conflict(self) -> bool:
        return bool(self.mask & v.CONFLICT)

    def accepts(self, version: str | None, checksum: str = "") -> bool:
        """Whether a package (or a provided name) at `version` meets this constraint, ignoring
        `!` (the caller decides what a conflict means). A provided name without a version
        meets only a constraint without one."""
        mask = self.mask & ~v.CONFLICT
        if mask & v.ANY == v.ANY or self.version is None:
            return True
        if mask & v.CHECKSUM == v.CHECKSUM:
            return checksum == self.version
        return version is not None and v.matches(version, mask, self.version)

    def __str__(self) -> str:
        op = {v.LESS: "<", v.LESS | v.EQUAL: "<=", v.EQUAL: "=", v.GREATER: ">",
              v.GREATER | v.EQUAL: ">=", v.FUZZY | v.EQUAL: "~", v.CHECKSUM: "><",
              v.LESS | v.EQUAL | v.FUZZY: "<~", v.GREATER | v.EQUAL | v.FUZZY: ">~"}  # fmt: skip
        bang = "!" if self.conflict else ""
        if self.version is None:
            return f"{bang}{self.name}"
        return f"{bang}{self.name}{op.get(self.mask & ~v.CONFLICT, '?')}{self.version}"


@dataclass(frozen=True, slots=True)
class Provided:
    """A name a package provides, with the version it provides it at (None: unversioned)."""

    name: str
    version: str | None

    @classmethod
    def parse(cls, text: str) -> Provided:
        name, sep, version = text.partition("=")
        return cls(name, version if sep else None)


@dataclass(frozen=True)
class ApkPackage:
    """One package of an index (or of the installed database): its fields as written."""

    name: str
    version: str
    checksum: str
    fields: tuple[tuple[str, str], ...]
    """Every `X:value` line of the record, in order (kept so a record is written back as read)."""
    repository: str = ""
    """The repository URL the index came from (empty for the installed database)."""
    depends: tuple[Dependency, ...] = ()
    provides: tuple[Provided, ...] = ()
    install_if: tuple[Dependency, ...] = ()
    _values: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def get(self, key: str, default: str = "") -> str:
        return self._values.get(key, default)

    @property
    def architecture(self) -> str:
        return self.get("A")

    @property
    def size(self) -> int:
        return int(self.get("S", "0") or 0)

    @property
    def installed_size(self) -> int:
        return int(self.get("I", "0") or 0)

    @property
    def provider_priority(self) -> int:
        return int(self.get("k", "0") or 0)

    @property
    def filename(self) -> str:
        """The .apk's name in its repository's architecture folder."""
        return f"{self.name}-{self.version}.apk"

    def control_sha1(self) -> bytes:
        """The SHA1 the `C:` field promises for the control segment."""
        if not self.checksum.startswith("Q1"):
            raise ApkFormatError(
                f"{self.name} {self.version}: C:{self.checksum} is not a Q1 checksum"
            )
        raw = base64.b64decode(self.checksum[2:], validate=True)
        if len(raw) != 20:
            raise ApkFormatError(f"{self.name} {self.version}: C: is not a SHA1")
        return raw

    @classmethod
    def from_fields(cls, fields: list[tuple[str, str]], repository: str = "") -> ApkPackage:
        values = dict(fields)
        name, version = values.get("P", ""), values.get("V", "")
        if not name or not version:
            raise ApkFormatError(f"a record without P: or V: ({fields[:2]!r})")
        try:
            return cls(
                name=name,
                version=version,
                checksum=values.get("C", ""),
                fields=tuple(fields),
                repository=repository,
                depends=tuple(Dependency.parse(d) for d in values.get("D", "").split()),
                provides=tuple(Provided.parse(p) for p in values.get("p", "").split()),
                install_if=tuple(Dependency.parse(d) for d in values.get("i", "").split()),
                _values=values,
            )
        except ApkFormatError as exc:
            raise ApkFormatError(f"{name} {version}: {exc}") from None


def records(text: str) -> Iterator[list[tuple[str, str]]]:
    """The blocks of an APKINDEX or installed database, each as its `(key, value)` lines."""
    for chunk in _BLANK.split(text):
        block = []
        for line in chunk.splitlines():
            if line[1:2] != ":":
                if not line.strip():
                    continue
                raise ApkFormatError(f"{line[:80]!r} is not an X:value line")
            block.append((line[0], line[2:]))
        if block:
            yield block


def read_index(text: str, repository: str = "") -> list[ApkPackage]:
    """Every package of an APKINDEX text (file lines `F:`/`R:` of a database are kept)."""
    return [ApkPackage.from_fields(block, repository) for block in records(text)]
