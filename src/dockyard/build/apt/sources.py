"""Package sources: an APT archive's suite, its components and architectures, and the keyring
its `InRelease` must be signed by; chosen from the settings for a base's distribution, or read
from a machine's own /etc/apt (Deb822 `.sources` and one-line `.list` files).

Errors about a source name it (`AptSource.name`), so a person knows which archive to look at.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from debian.deb822 import Deb822

from dockyard.build.rootfs import os_release_fields
from dockyard.config import PackageSource


class SourceError(Exception):
    """A package source could not be used: unreachable, unsigned, tampered, out of date, or
    configured wrongly. The message names the source and says what is wrong."""

    def __init__(self, message: str, source: AptSource | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source


@dataclass(frozen=True)
class AptSource:
    """One suite of an APT archive (`deb URI SUITE COMPONENTS…`) and the keyring it is signed
    by: a certificate file (binary `.gpg` or armored `.asc`) or a folder of them."""

    uri: str
    suite: str
    components: tuple[str, ...]
    architectures: tuple[str, ...]
    keyring: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "uri", self.uri.rstrip("/"))
        if self.suite.endswith("/") or not self.components:
            raise SourceError(f"{self.name}: flat repositories (no components) are not supported")

    @property
    def name(self) -> str:
        """How errors name this source: `URI SUITE`."""
        return f"{self.uri} {self.suite}"

    def dists_url(self, path: str) -> str:
        """The URL of `path` under this suite's `dists/` folder (InRelease, main/binary-…)."""
        return f"{self.uri}/dists/{self.suite}/{path}"

    def pool_url(self, filename: str) -> str:
        """The URL of a package's `Filename` (relative to the archive root, e.g. pool/main/…)."""
        if filename.startswith("/") or ".." in filename.split("/"):
            raise SourceError(f"{self.name}: package file name {filename!r} leaves the archive")
        return f"{self.uri}/{filename}"


def sources_for(
    settings: Iterable[PackageSource], distribution: str, codename: str
) -> list[AptSource]:
    """The sources the settings give for a base whose os-release says `ID=distribution` and
    `VERSION_CODENAME=codename`: `{codename}` is filled in, and literal suites are kept when
    they are that codename or one of its pockets (bookworm, bookworm-updates, -security)."""
    found = []
    for entry in settings:
        if entry.distribution != distribution:
            continue
        for suite in entry.suites:
            if "{codename}" in suite:
                suite = suite.replace("{codename}", codename)
            elif suite != codename and not suite.startswith(f"{codename}-"):
                continue
            found.append(
                AptSource(
                    uri=entry.uri,
                    suite=suite,
                    components=tuple(entry.components),
                    architectures=tuple(entry.architectures),
                    keyring=entry.keyring,
                )
            )
    return found


def read_apt_sources(etc_apt: Path = Path("/etc/apt")) -> list[AptSource]:
    """The `deb` sources a machine's apt uses: `sources.list`, `sources.list.d/*.list` and
    `sources.list.d/*.sources`, in apt's order (disabled entries and `deb-src` skipped). An
    entry without `Signed-By` is checked against apt's global trusted keys, as apt does."""
    trusted = etc_apt / "trusted.gpg.d"
    found: list[AptSource] = []
    one_line = [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*.list"))]
    for path in one_line:
        if path.is_file():
            found.extend(_one_line_sources(path.read_text(), trusted))
    for path in sorted((etc_apt / "sources.list.d").glob("*.sources")):
        with path.open() as handle:
            found.extend(
                _deb822_sources(Deb822.iter_paragraphs(handle, use_apt_pkg=False), trusted)
            )
    return found


def _deb822_sources(paragraphs: Iterator[Deb822], trusted: Path) -> Iterator[AptSource]:
    for paragraph in paragraphs:
        if "deb" not in paragraph.get("Types", "").split():
            continue
        if paragraph.get("Enabled", "yes").strip().lower() == "no":
            continue
        keyring = _keyring(paragraph.get("Signed-By", ""), trusted)
        if keyring is None:  # an embedded key block: not a path we can hand on
            continue
        for uri in paragraph.get("URIs", "").split():
            for suite in paragraph.get("Suites", "").split():
                yield AptSource(
                    uri=uri,
                    suite=suite,
                    components=tuple(paragraph.get("Components", "").split()),
                    architectures=tuple(paragraph.get("Architectures", "").split()),
                    keyring=keyring,
                )


_OPTIONS = re.compile(r"^\[([^\]]*)\]\s*")


def _one_line_sources(text: str, trusted: Path) -> Iterator[AptSource]:
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb ") and not line.startswith("deb\t"):
            continue
        rest = line[3:].strip()
        options: dict[str, str] = {}
        match = _OPTIONS.match(rest)
        if match:
            for option in shlex.split(match.group(1)):
                key, _, value = option.partition("=")
                options[key.lower()] = value
            rest = rest[match.end() :]
        words = rest.split()
        if len(words) < 3:  # flat repositories are not supported
            continue
        keyring = _keyring(options.get("signed-by", "").replace(",", " "), trusted)
        if keyring is None:
            continue
        yield AptSource(
            uri=words[0],
            suite=words[1],
            components=tuple(words[2:]),
            architectures=tuple(a for a in options.get("arch", "").split(",") if a),
            keyring=keyring,
        )


def _keyring(signed_by: str, trusted: Path) -> Path | None:
    """The keyring a `Signed-By` value names: its first path; apt's trusted folder when empty;
    None when the value is an embedded key or fingerprints only."""
    value = signed_by.strip()
    if not value:
        return trusted
    if value.startswith("-----BEGIN"):
        return None
    paths = [word for word in value.split() if word.startswith("/")]
    return Path(paths[0]) if paths else None


def keyring_files(keyring: Path) -> Sequence[Path]:
    """The certificate files of a keyring: the file itself, or a folder's `.gpg` and `.asc`
    files (apt's trusted.gpg.d layout), sorted."""
    if keyring.is_dir():
        return sorted(p for p in keyring.iterdir() if p.suffix in (".gpg", ".asc") and p.is_file())
    return [keyring]


def machine_package_sources(etc: Path = Path("/etc")) -> list[PackageSource]:
    """This machine's apt sources as settings for bases of its own distribution, any release:
    a suite named after the machine's codename (bookworm, bookworm-updates) becomes
    `{codename}`, `{codename}-updates`, so a trixie base gets trixie's. Empty when the machine
    has no apt or no os-release."""
    release = _os_release(etc / "os-release") or _os_release(Path("/usr/lib/os-release"))
    distribution, codename = release.get("ID", ""), release.get("VERSION_CODENAME", "")
    if not distribution or not codename or not (etc / "apt").is_dir():
        return []
    found: list[PackageSource] = []
    for source in read_apt_sources(etc / "apt"):
        suite = source.suite
        if suite == codename or suite.startswith(f"{codename}-"):
            suite = "{codename}" + suite.removeprefix(codename)
        entry = PackageSource(
            distribution=distribution,
            uri=source.uri,
            suites=[suite],
            components=list(source.components),
            architectures=list(source.architectures),
            keyring=source.keyring,
        )
        found.append(entry)
    return found


def _os_release(path: Path) -> dict[str, str]:
    try:
        return os_release_fields(path.read_text())
    except OSError:
        return {}
