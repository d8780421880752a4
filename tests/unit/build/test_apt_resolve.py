"""The resolver (build/apt/resolve.py) on hand-written indexes, one hard case each: what apt
would choose, why, and what it refuses with a message that names the package and the field."""

from __future__ import annotations

import textwrap

import pytest

from dockyard.build.apt.candidates import PackageIndex
from dockyard.build.apt.packages import Installed, read_packages
from dockyard.build.apt.resolution import (
    Request,
    Resolution,
    ResolveError,
    UnknownPackage,
    UnknownVersion,
    Unresolvable,
    VirtualPackage,
)
from dockyard.build.apt.resolve import resolve


def stanzas(text: str, **common: str) -> str:
    """Stanzas separated by `---` lines; `common` fields are added to each one."""
    blocks = []
    for block in textwrap.dedent(text).split("---"):
        lines = [line for line in block.strip().splitlines() if line]
        present = {line.split(":", 1)[0] for line in lines}
        lines += [
            f"{key.replace('_', '-')}: {value}"
            for key, value in common.items()
            if key.replace("_", "-") not in present
        ]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def index(text: str) -> PackageIndex:
    return PackageIndex.from_texts(
        [("", stanzas(text, Architecture="amd64", Priority="optional"))], "amd64"
    )


def base(text: str = "") -> Installed:
    if not text:
        return Installed([], "amd64")
    body = stanzas(text, Architecture="amd64", Status="install ok installed", Priority="optional")
    return Installed(read_packages(body, "status"), "amd64")


def run(requests: list[str], available: str, installed: str = "") -> Resolution:
    return resolve(requests, index(available), base(installed))


def chosen(resolution: Resolution) -> dict[str, str]:
    return resolution.versions()


def why(resolution: Resolution, name: str) -> str:
    return next(str(c.reason) for c in resolution.choices if c.package.name == name)


ALTERNATIVES = """
Package: app
Version: 1
Depends: first | second
---
Package: first
Version: 1
---
Package: second
Version: 1
"""


def test_the_first_alternative_wins_and_the_reason_names_the_field() -> None:
    result = run(["app"], ALTERNATIVES)
    assert chosen(result) == {"app": "1", "first": "1"}
    assert why(result, "app") == "requested"
    assert why(result, "first") == "Depends of app: first | second"


def test_an_installed_or_requested_alternative_wins() -> None:
    installed = run(["app"], ALTERNATIVES, "Package: second\nVersion: 1")
    assert chosen(installed) == {"app": "1"}
    assert [p.name for p in installed.satisfied_by_base] == ["second"]
    # Requests are marked before any dependency is followed, as apt does.
    assert chosen(run(["app", "second"], ALTERNATIVES)) == {"app": "1", "second": "1"}


def test_an_alternative_that_cannot_be_installed_is_passed_over() -> None:
    available = ALTERNATIVES.replace(
        "Package: first\nVersion: 1", "Package: first\nVersion: 1\nDepends: missing"
    )
    assert chosen(run(["app"], available)) == {"app": "1", "second": "1"}


VIRTUAL = """
Package: mailer
Version: 1
Depends: mail-transport-agent
---
Package: tiny-mta
Version: 1
Provides: mail-transport-agent
---
Package: big-mta
Version: 1
Priority: standard
Provides: mail-transport-agent
"""


def test_a_virtual_dependency_takes_the_provider_apt_prefers() -> None:
    result = run(["mailer"], VIRTUAL)
    # A better Priority wins among providers (apt's CompareProviders).
    assert chosen(result) == {"mailer": "1", "big-mta": "1"}
    assert why(result, "big-mta") == "Depends of mailer: mail-transport-agent"
    # An installed provider is enough.
    assert chosen(
        run(["mailer"], VIRTUAL, "Package: tiny-mta\nVersion: 1\nProvides: mail-transport-agent")
    ) == {"mailer": "1"}


def test_a_requested_virtual_name_needs_a_single_provider() -> None:
    with pytest.raises(VirtualPackage) as refused:
        run(["mail-transport-agent"], VIRTUAL)
    assert refused.value.providers == ["big-mta", "tiny-mta"]
    assert "name one of them" in str(refused.value)
    one = VIRTUAL.replace(
        "Provides: mail-transport-agent\n---\nPackage: big-mta", "\n---\nPackage: big-mta"
    )
    assert chosen(run(["mail-transport-agent"], one)) == {"big-mta": "1"}


def test_a_versioned_dependency_is_met_only_by_a_versioned_provide_that_fits() -> None:
    available = """
    Package: app
    Version: 1
    Depends: api (>= 2)
    ---
    Package: unversioned
    Version: 9
    Priority: required
    Provides: api
    ---
    Package: old-api
    Version: 1
    Provides: api (= 1)
    ---
    Package: new-api
    Version: 1
    Provides: api (= 2.1)
    """
    assert chosen(run(["app"], available)) == {"app": "1", "new-api": "1"}


def test_a_version_constraint_picks_nothing_older() -> None:
    available = """
    Package: app
    Version: 1
    Depends: lib (>= 3)
    ---
    Package: lib
    Version: 2
    """
    with pytest.raises(Unresolvable) as refused:
        run(["app"], available)
    message = str(refused.value)
    assert message.startswith("contents.packages[0]: cannot install app:")
    assert "app 1 Depends: lib (>= 3), but the index has lib 2" in message


def test_conflicts_pass_over_an_alternative_and_refuse_when_none_is_left() -> None:
    available = """
    Package: app
    Version: 1
    Depends: first | second
    ---
    Package: first
    Version: 1
    Conflicts: keeper
    ---
    Package: second
    Version: 1
    """
    assert chosen(run(["app"], available, "Package: keeper\nVersion: 1")) == {
        "app": "1",
        "second": "1",
    }
    lone = available.replace("Depends: first | second", "Depends: first")
    with pytest.raises(Unresolvable) as refused:
        run(["app"], lone, "Package: keeper\nVersion: 1")
    message = str(refused.value)
    assert "first 1 Conflicts: keeper, and the base has keeper 1" in message
    assert "never removes a package from its base" in message


def test_a_conflict_with_a_virtual_name_counts_its_providers() -> None:
    available = """
    Package: exim
    Version: 1
    Provides: mta
    Conflicts: mta
    """
    # A package's conflict with what it provides itself is no conflict; another provider is.
    assert chosen(run(["exim"], available)) == {"exim": "1"}
    with pytest.raises(Unresolvable, match="exim 1 Conflicts: mta, and the base has postfix 1"):
        run(["exim"], available, "Package: postfix\nVersion: 1\nProvides: mta")


def test_breaks_upgrade_the_installed_package_when_its_candidate_is_fixed() -> None:
    available = """
    Package: libnew
    Version: 2
    Breaks: tool (<< 2)
    ---
    Package: tool
    Version: 2
    """
    result = run(["libnew"], available, "Package: tool\nVersion: 1")
    assert chosen(result) == {"libnew": "2", "tool": "2"}
    upgrade = next(c for c in result.choices if c.package.name == "tool")
    assert upgrade.action == "upgrade"
    assert upgrade.installed is not None
    assert str(upgrade.reason) == "upgraded for libnew: libnew 2 Breaks: tool (<< 2)"


def test_an_installed_package_that_breaks_the_new_one_is_named() -> None:
    available = """
    Package: plugin
    Version: 1
    """
    with pytest.raises(Unresolvable) as refused:
        run(["plugin"], available, "Package: host\nVersion: 5\nBreaks: plugin (<< 2)")
    assert "host 5 Breaks: plugin (<< 2), and the base has host 5" in str(refused.value)
    assert refused.value.field == "contents.packages[0]"


def test_chosen_packages_that_conflict_are_refused() -> None:
    available = """
    Package: aa
    Version: 1
    Conflicts: bb
    ---
    Package: bb
    Version: 1
    """
    with pytest.raises(
        Unresolvable, match=r"aa 1 Conflicts: bb, and bb 1 is chosen \(requested\)"
    ) as refused:
        resolve(
            [Request("bb"), Request("aa", field="contents.packages[1]")], index(available), base()
        )
    assert refused.value.field == "contents.packages[1]"


def test_multi_arch_qualifiers_and_architecture_all() -> None:
    available = """
    Package: app
    Version: 1
    Depends: python3:any (>= 3.11), data, helper:amd64, tool:native
    ---
    Package: python3
    Version: 3.11.2-1
    Multi-Arch: allowed
    ---
    Package: data
    Version: 1
    Architecture: all
    ---
    Package: helper
    Version: 1
    Multi-Arch: same
    ---
    Package: tool
    Version: 1
    Multi-Arch: foreign
    ---
    Package: data
    Version: 9
    Architecture: arm64
    """
    assert chosen(run(["app"], available)) == {
        "app": "1",
        "python3": "3.11.2-1",
        "data": "1",
        "helper": "1",
        "tool": "1",
    }


def test_any_is_met_only_by_a_multi_arch_allowed_package() -> None:
    available = """
    Package: app
    Version: 1
    Depends: perl:any
    ---
    Package: perl
    Version: 5.36
    Multi-Arch: foreign
    """
    with pytest.raises(
        Unresolvable, match=r"app 1 Depends: perl:any, but the index has perl 5\.36"
    ):
        run(["app"], available)
    with pytest.raises(Unresolvable, match="Depends: perl:i386"):
        run(["app"], available.replace("perl:any", "perl:i386"))


def test_pre_depends_come_before_depends() -> None:
    available = """
    Package: app
    Version: 1
    Depends: late
    Pre-Depends: early
    ---
    Package: late
    Version: 1
    ---
    Package: early
    Version: 1
    """
    result = run(["app"], available)
    assert list(chosen(result)) == ["app", "early", "late"]
    assert why(result, "early") == "Pre-Depends of app: early"


def test_recommends_are_not_followed() -> None:
    available = "Package: app\nVersion: 1\nRecommends: extra\n---\nPackage: extra\nVersion: 1"
    assert chosen(run(["app"], available)) == {"app": "1"}


def test_an_unknown_name_gets_the_closest_names() -> None:
    with pytest.raises(UnknownPackage) as refused:
        resolve(
            [Request.parse("curll", "contents.packages[0]")],
            index("Package: curl\nVersion: 1"),
            base(),
        )
    assert refused.value.suggestions == ["curl"]
    assert refused.value.detail == {
        "field": "contents.packages[0]",
        "package": "curll",
        "suggestions": ["curl"],
    }
    assert str(refused.value) == (
        "contents.packages[0]: no package named 'curll' in the package index; did you mean curl?"
    )


def test_a_missing_version_lists_the_available_ones() -> None:
    available = "Package: jq\nVersion: 1.6-2.1\n---\nPackage: jq\nVersion: 1.6-2.1+deb12u1"
    with pytest.raises(UnknownVersion) as refused:
        run(["jq=1.5"], available)
    assert refused.value.available == ["1.6-2.1+deb12u1", "1.6-2.1"]
    assert "jq 1.5 is not in the package index; available: 1.6-2.1+deb12u1, 1.6-2.1" in str(
        refused.value
    )
    # An exact version that the index has is installed even when it is not the newest.
    assert chosen(run(["jq=1.6-2.1"], available)) == {"jq": "1.6-2.1"}


def test_a_request_is_a_name_or_name_equals_version() -> None:
    with pytest.raises(ResolveError, match="is not a package name or name=version") as refused:
        Request.parse("curl>=7", "contents.packages[2]")
    assert refused.value.field == "contents.packages[2]"
    assert Request.parse("jq=1.6-2.1+deb12u1") == Request("jq", "1.6-2.1+deb12u1")


def test_what_the_base_has_is_skipped_and_an_old_version_is_upgraded() -> None:
    available = """
    Package: app
    Version: 1
    Depends: lib (>= 2), other
    ---
    Package: lib
    Version: 2
    ---
    Package: other
    Version: 1
    """
    result = run(["app"], available, "Package: lib\nVersion: 1\n---\nPackage: other\nVersion: 1")
    assert chosen(result) == {"app": "1", "lib": "2"}
    assert [c.action for c in result.choices] == ["install", "upgrade"]
    assert [p.name for p in result.satisfied_by_base] == ["other"]
    # A request for what the base has at the candidate's version adds nothing.
    assert chosen(run(["other"], available, "Package: other\nVersion: 1")) == {}


def test_an_upgrade_upgrades_dependents_it_would_break_or_is_refused() -> None:
    available = """
    Package: app
    Version: 1
    Depends: lib (>= 2)
    ---
    Package: lib
    Version: 2
    ---
    Package: user
    Version: 2
    Depends: lib (= 2)
    """
    installed = "Package: lib\nVersion: 1\n---\nPackage: user\nVersion: 1\nDepends: lib (= 1)"
    result = run(["app"], available, installed)
    assert chosen(result) == {"app": "1", "lib": "2", "user": "2"}
    assert why(result, "user") == "upgraded for lib: user 1 Depends: lib (= 1)"
    stuck = textwrap.dedent(available).replace(
        "Package: user\nVersion: 2", "Package: user\nVersion: 1"
    )
    with pytest.raises(Unresolvable, match=r"lib 2 would break user 1 Depends: lib \(= 1\)"):
        run(["app"], stuck, installed)


def test_binaries_of_the_same_source_are_upgraded_together() -> None:
    available = """
    Package: curl
    Version: 2
    Depends: libcurl4 (= 2)
    ---
    Package: libcurl4
    Version: 2
    Source: curl
    ---
    Package: libcurl3-gnutls
    Version: 2
    Source: curl
    """
    installed = "Package: libcurl3-gnutls\nVersion: 1\nSource: curl"
    result = run(["curl"], available, installed)
    assert chosen(result) == {"curl": "2", "libcurl3-gnutls": "2", "libcurl4": "2"}
    assert why(result, "libcurl3-gnutls") == "upgraded with curl: both are built from source curl"


def test_a_dependency_cycle_ends() -> None:
    available = "Package: aa\nVersion: 1\nDepends: bb\n---\nPackage: bb\nVersion: 1\nDepends: aa"
    assert chosen(run(["aa"], available)) == {"aa": "1", "bb": "1"}


def test_providers_alike_in_all_else_go_to_the_one_apt_numbers_last() -> None:
    # apt numbers packages in the order its indexes first name them and, when nothing else
    # decides, takes the highest number (CompareProviders: A->ID > B->ID).
    available = """
    Package: early-mta
    Version: 1
    Provides: mta
    ---
    Package: mailer
    Version: 1
    Depends: mta
    ---
    Package: late-mta
    Version: 1
    Provides: mta
    """
    assert chosen(run(["mailer"], available)) == {"mailer": "1", "late-mta": "1"}
    # Named first by a relation, a package is numbered there and no longer last.
    named_first = "Package: intro\nVersion: 1\nSuggests: late-mta\n---\n" + textwrap.dedent(
        available
    )
    assert chosen(run(["mailer"], named_first)) == {"mailer": "1", "early-mta": "1"}
    # Essential beats the number.
    essential = textwrap.dedent(available).replace(
        "Provides: mta\n---", "Provides: mta\nEssential: yes\n---", 1
    )
    assert chosen(run(["mailer"], essential)) == {"mailer": "1", "early-mta": "1"}
