"""The resolver agrees with apt itself: on a real Debian minbase (mmdebstrap of this machine's
suite, support/debian.py) and the very `Packages` indexes apt verified for it, the closure of
each request equals what `apt-get -s --no-install-recommends install` would install, package
for package and version for version."""

from __future__ import annotations

import pytest

from dockyard.build.apt.candidates import PackageIndex
from dockyard.build.apt.packages import Installed
from dockyard.build.apt.resolution import Unresolvable
from dockyard.build.apt.resolve import resolve
from support.debian import DebianBase

pytestmark = pytest.mark.peers

REQUESTS = [
    ["curl"],
    ["git"],
    ["python3"],
    ["openssh-client"],
    ["ca-certificates"],
    # default-mta | mail-transport-agent: the alternative is a virtual package.
    ["bsd-mailx"],
    # exim4 | mail-transport-agent, and a real package first.
    ["ipband"],
    # rsyslog | system-log-daemon, debconf | debconf-2.0, ...
    ["fwlogwatch"],
    # Many or-groups at once (bsd-mailx | mailx, cron, inn | inn2 | news-transport-system).
    ["inn"],
    # Depends on awk, which the base's mawk provides.
    ["prettyping"],
    # A request that is itself one of the alternatives another request needs.
    ["bsd-mailx", "postfix"],
    # Everything above in one transaction.
    ["curl", "git", "python3", "openssh-client", "ca-certificates", "bsd-mailx", "inn"],
]


@pytest.fixture(scope="session")
def base_index(debian_base: DebianBase) -> tuple[PackageIndex, Installed]:
    return debian_base.index(), debian_base.installed()


@pytest.mark.parametrize("requests", REQUESTS, ids=[" ".join(r) for r in REQUESTS])
def test_the_closure_is_the_one_apt_installs(
    debian_base: DebianBase, base_index: tuple[PackageIndex, Installed], requests: list[str]
) -> None:
    index, installed = base_index
    ours = resolve(requests, index, installed).versions()
    assert ours == debian_base.apt_get_install(requests)
    assert ours  # none of these is in a minbase: the comparison compares something


def test_what_the_base_has_is_not_installed_again(
    debian_base: DebianBase, base_index: tuple[PackageIndex, Installed]
) -> None:
    index, installed = base_index
    result = resolve(["apt", "curl"], index, installed)
    assert "apt" not in result.versions()
    assert "libc6" in {p.name for p in result.satisfied_by_base}
    assert debian_base.apt_get_install(["apt"]) == {}


def test_an_older_version_that_apt_cannot_install_is_refused_too(
    debian_base: DebianBase, base_index: tuple[PackageIndex, Installed]
) -> None:
    index, installed = base_index
    versions = [p.version for p in index.versions("curl")]
    assert len(versions) > 1, "the suite and its updates should hold two curls"
    # curl's Depends pins libcurl4 to its own version; apt's candidate libcurl4 is the newest.
    older = f"curl={versions[-1]}"
    with pytest.raises(Unresolvable, match=r"Depends: libcurl4 \(= "):
        resolve([older], index, installed)
    with pytest.raises(AssertionError, match="Depends: libcurl4"):
        debian_base.apt_get_install([older])
