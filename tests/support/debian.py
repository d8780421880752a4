"""A real minimal Debian system for the tests: `mmdebstrap --variant=minbase` of the suite that
this machine's apt uses, from the mirror it uses (read from /etc/apt, never a hard-coded host),
with that suite's -updates and -security sources beside it, as apt would have them.

The system is built once per test run (xdist workers share it through a lock beside their
temporary folders) and, unless `DOCKYARD_TEST_CACHE=off`, kept for the day in
`~/.cache/dockyard-tests` (or `$DOCKYARD_TEST_CACHE`): the key holds the date, the sources and the
architecture, so a clean checkout (CI) builds its own and a second run on one machine reuses it.
mmdebstrap keeps apt's lists (`--skip=cleanup/apt/lists`): the `Packages` indexes apt verified
against the signed `InRelease`, which the resolver's tests read as its candidate index.

Treat `rootfs` as read-only: other tests (and other runs, through the cache) share it.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from debian.deb822 import Deb822

from dockyard.build.apt.candidates import PackageIndex
from dockyard.build.apt.packages import Installed, read_packages

APT_ETC = Path("/etc/apt")
BUILD_TIMEOUT = 900.0
APT_TIMEOUT = 120.0
FIXTURES = frozenset({"debian_base"})
"""The fixtures that build the base: a test using one must be marked `peers` (rules.py)."""

_INST = re.compile(r"^Inst (?P<name>[^\s:]+)(?::\S+)? (?:\[(?P<old>\S+)\] )?\((?P<version>\S+) ")


@dataclass(frozen=True)
class AptSource:
    """One `deb` source: a mirror, a suite and its components (`signed_by` as configured)."""

    uri: str
    suite: str
    components: tuple[str, ...]
    signed_by: str = ""

    def line(self) -> str:
        """The source as a one-line `sources.list` entry."""
        options = f"[signed-by={self.signed_by}] " if self.signed_by else ""
        return f"deb {options}{self.uri} {self.suite} {' '.join(self.components)}"

    def list_name(self, component: str, architecture: str) -> str:
        """The file apt keeps this source's `Packages` index in (apt's `URItoFileName`)."""
        address = (
            f"{self.uri.rstrip('/')}/dists/{self.suite}/{component}/binary-{architecture}/Packages"
        )
        address = address.split("://", 1)[-1].rsplit("@", 1)[-1]
        quoted = "".join(f"%{ord(c):02x}" if c in '\\|{}[]<>"^~_=!@#$%&*' else c for c in address)
        return quoted.replace("/", "_")


def machine_sources(etc: Path = APT_ETC) -> list[AptSource]:
    """The `deb` sources this machine's apt reads: sources.list.d/*.sources (deb822), then the
    one-line sources.list and sources.list.d/*.list, in apt's order of files."""
    found: list[AptSource] = []
    parts = etc / "sources.list.d"
    files = [etc / "sources.list", *sorted(parts.glob("*.list")), *sorted(parts.glob("*.sources"))]
    for path in files:
        if not path.is_file():
            continue
        if path.suffix == ".sources":
            found += _deb822_sources(path.read_text())
        else:
            found += _one_line_sources(path.read_text())
    return found


def _deb822_sources(text: str) -> list[AptSource]:
    found = []
    for stanza in Deb822.iter_paragraphs(text.splitlines()):
        if "deb" not in stanza.get("Types", "").split() or stanza.get("Enabled", "yes") == "no":
            continue
        for uri in stanza.get("URIs", "").split():
            for suite in stanza.get("Suites", "").split():
                components = tuple(stanza.get("Components", "").split())
                found.append(AptSource(uri, suite, components, stanza.get("Signed-By", "").strip()))
    return found


def _one_line_sources(text: str) -> list[AptSource]:
    found = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        signed_by = ""
        match = re.match(r"deb\s+\[([^\]]*)\]\s+(.*)", line)
        if match:
            options, line = match.group(1), "deb " + match.group(2)
            signed_by = next(
                (o.split("=", 1)[1] for o in options.split() if o.startswith("signed-by=")), ""
            )
        _, uri, suite, *components = line.split()
        found.append(AptSource(uri, suite, tuple(components), signed_by))
    return found


def base_sources(sources: Sequence[AptSource]) -> list[AptSource]:
    """The machine's release suite (its first source whose suite names a release) with the
    -updates and -security suites of it; backports are left out (apt does not take candidates
    from them by default)."""
    releases = [s.suite for s in sources if "-" not in s.suite and "/" not in s.suite]
    if not releases:
        raise RuntimeError(f"no Debian release suite among this machine's apt sources: {sources}")
    release = releases[0]
    chosen = [s for s in sources if s.suite == release or s.suite.startswith(release + "-")]
    return [s for s in chosen if not s.suite.endswith("-backports")]


@dataclass(frozen=True)
class DebianBase:
    """A minbase system built by mmdebstrap, and the apt indexes it was built from."""

    rootfs: Path
    suite: str
    architecture: str
    sources: tuple[AptSource, ...]

    @property
    def status(self) -> Path:
        """The system's dpkg database."""
        return self.rootfs / "var/lib/dpkg/status"

    @property
    def lists(self) -> Path:
        """apt's lists folder: the verified `InRelease` and `Packages` of every source."""
        return self.rootfs / "var/lib/apt/lists"

    @property
    def packages(self) -> tuple[Path, ...]:
        """The `Packages` indexes, in the order of the sources (apt's order)."""
        return tuple(
            self.lists / source.list_name(component, self.architecture)
            for source in self.sources
            for component in source.components
        )

    def index(self) -> PackageIndex:
        """The candidate index over every source's `Packages`."""
        return PackageIndex.from_files(((p.name, p) for p in self.packages), self.architecture)

    def installed(self) -> Installed:
        """The system's installed packages."""
        return Installed(read_packages(self.status.read_text(encoding="utf-8")), self.architecture)

    def apt_get_install(self, requests: Sequence[str]) -> dict[str, str]:
        """`{name: version}` of what `apt-get -s --no-install-recommends install REQUESTS`
        would install or upgrade on this system (apt's own answer; raises when apt refuses)."""
        argv = ["apt-get", "-s", "-q", "--no-install-recommends", *self.apt_options(), "install"]
        done = subprocess.run(
            [*argv, *requests], capture_output=True, text=True, timeout=APT_TIMEOUT, check=False
        )
        if done.returncode != 0:
            raise AssertionError(f"apt-get refused {list(requests)}:\n{done.stdout}\n{done.stderr}")
        return {m["name"]: m["version"] for m in map(_INST.match, done.stdout.splitlines()) if m}

    def apt_options(self) -> list[str]:
        """apt options that read this system's state and lists and write nothing to it."""
        options = {
            "Dir": f"{self.rootfs}/",
            "Dir::State::status": str(self.status),
            "Dir::Etc::SourceParts": str(self.rootfs / "etc/apt/sources.list.d"),
            "Dir::Etc::Preferences": "/dev/null",
            "Dir::Etc::PreferencesParts": "/dev/null",
            "Dir::Cache::pkgcache": "",
            "Dir::Cache::srcpkgcache": "",
            "APT::Architecture": self.architecture,
            "APT::Architectures": self.architecture,
            "Debug::NoLocking": "true",
        }
        return [arg for key, value in options.items() for arg in ("-o", f"{key}={value}")]


def build_base(rootfs: Path, suite: str, architecture: str, sources: Sequence[AptSource]) -> None:
    """mmdebstrap a minbase `suite` into `rootfs`, keeping apt's lists."""
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        f"--architectures={architecture}",
        "--skip=cleanup/apt/lists",
        "--quiet",
        suite,
        str(rootfs),
        *(source.line() for source in sources),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"mmdebstrap failed ({done.returncode}):\n{done.stderr[-4000:]}")


def native_architecture() -> str:
    """dpkg's architecture of this machine (the base is built for it)."""
    return subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()


def cache_root() -> Path | None:
    """Where bases are kept between runs, or None when `DOCKYARD_TEST_CACHE=off`."""
    setting = os.environ.get("DOCKYARD_TEST_CACHE", "")
    if setting.lower() in ("off", "0", "no"):
        return None
    return Path(setting) if setting else Path.home() / ".cache" / "dockyard-tests"


def prepared_base(folder: Path, sources: Sequence[AptSource], architecture: str) -> DebianBase:
    """The base under `folder`, built there unless a run (or a worker) already did today."""
    suite = sources[0].suite
    digest = hashlib.sha256("\n".join(s.line() for s in sources).encode()).hexdigest()[:12]
    day = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d")
    prefix = f"debian-{suite}-{architecture}-minbase-"
    rootfs = folder / f"{prefix}{day}-{digest}"
    base = DebianBase(rootfs, suite, architecture, tuple(sources))
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder / f"{prefix}lock"):
        if (rootfs / ".complete").exists():
            return base
        # Earlier days' bases and a build cut short go; today's other keys may be in use.
        for stale in folder.glob(f"{prefix}*"):
            if stale.is_dir() and (day not in stale.name or stale.name.endswith("partial")):
                shutil.rmtree(stale)
        partial = folder / f"{prefix}{day}-{digest}-partial"
        build_base(partial, suite, architecture, sources)
        lists = partial / "var/lib/apt/lists"
        missing = [path.name for path in base.packages if not (lists / path.name).is_file()]
        if missing:
            raise RuntimeError(f"mmdebstrap kept no apt list named {missing}")
        (partial / ".complete").touch()
        partial.rename(rootfs)
    return base


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def debian_base(tmp_path_factory: pytest.TempPathFactory) -> DebianBase:
    """A Debian minbase of this machine's suite and architecture (see the module's docstring)."""
    sources = base_sources(machine_sources())
    run_folder = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run_folder = run_folder.parent  # shared by the run's xdist workers
    folder = cache_root() or run_folder / "debian"
    return prepared_base(folder, sources, native_architecture())
