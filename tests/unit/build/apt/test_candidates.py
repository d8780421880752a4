"""The candidate index over located `Packages` files (candidates.py, scan.py): the same answers
as parsing every stanza, from files it maps and scans once, with apt's numbering of names."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dockyard.build.apt import candidates
from dockyard.build.apt.candidates import PackageIndex
from dockyard.build.apt.packages import _NAMES, RELATION_FIELDS, read_packages
from dockyard.build.apt.scan import open_index, scan

INDEX = textwrap.dedent("""\
    Package: curl
    Version: 7.88.1-10+deb12u5
    Architecture: amd64
    Depends: libcurl4 (= 7.88.1-10+deb12u5), libc6 (>= 2.34), zlib1g:any
    Recommends: ca-certificates
    Pre-Depends: dpkg (>= 1.15)
    Description: transfers URLs, libc6 and zlib
    Priority: optional

    Package: arm-only
    Version: 1
    Architecture: arm64
    Depends: early-on-arm

    Package: mawk
    Version: 1.3.4
    Architecture: amd64
    Provides: awk,
     mawk-compat (= 1.3.4)
    Conflicts: gawk | original-awk
    Breaks: early-on-arm

    Package: gawk
    Version: 1:5.2.1-2
    Architecture: amd64
    Provides: awk
    Depends: libc6,libmpfr6 (>= 4.1),
     libsigsegv2

    Package: docs
    Version: 2
    Architecture: all
    Suggests: mawk | gawk, libc6-dev
""")
UPDATES = textwrap.dedent("""\
    Package: curl
    Version: 7.88.1-10+deb12u8
    Architecture: amd64
    Depends: libcurl4 (= 7.88.1-10+deb12u8), libc6 (>= 2.34)

    Package: late
    Version: 1
    Architecture: amd64
    Enhances: never-a-package
""")


def apt_numbers(texts: list[str], architecture: str) -> dict[str, int]:
    """apt's cache numbering as the resolver had it: every stanza's name, then its relation
    fields in `RELATION_FIELDS` order, numbered as first met."""
    ranks: dict[str, int] = {}
    for text in texts:
        for package in read_packages(text):
            if package.architecture not in (architecture, "all"):
                continue
            ranks.setdefault(package.name, len(ranks))
            for field in RELATION_FIELDS:
                value = getattr(package, field.replace("-", "_") + "_text")
                for name in _NAMES.findall(value):
                    ranks.setdefault(name, len(ranks))
    return ranks


NAMES = [
    *apt_numbers([INDEX, UPDATES], "amd64"),
    "early-on-arm",  # named only in an arm64 stanza before an amd64 one names it
    "zlib1g:any",  # a qualifier is not part of the name
    "zlib",  # only in a description
    "libc",  # only inside longer names
    "nowhere",
]


@pytest.mark.parametrize("searches", [0, -1], ids=["name by name", "all in one pass"])
def test_names_are_ranked_in_the_order_apt_numbers_them(
    searches: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(candidates, "LOOKUP_PASSES", searches)
    index = PackageIndex.from_texts([("main", INDEX), ("updates", UPDATES)], "amd64")
    apt = apt_numbers([INDEX, UPDATES], "amd64")
    ours = sorted(NAMES, key=lambda name: (index.rank(name), name))
    assert ours == sorted(NAMES, key=lambda name: (apt.get(name, len(apt)), name))
    # Within one stanza the fields' order decides, not where they stand in it.
    assert index.rank("dpkg") < index.rank("libcurl4") < index.rank("ca-certificates")
    assert index.rank("nowhere") == index.rank("zlib") == candidates.UNNAMED


def test_a_mapped_file_answers_as_its_parsed_text_and_is_scanned_once(tmp_path: Path) -> None:
    main, updates = tmp_path / "main", tmp_path / "updates"
    main.write_text(INDEX)
    updates.write_text(UPDATES)
    index = PackageIndex.from_files([("main", main), ("updates", updates)], "amd64")
    curl = index.candidate("curl")
    assert curl is not None
    assert (curl.version, curl.origin, curl.priority) == ("7.88.1-10+deb12u8", "updates", "")
    assert [p.version for p in index.versions("curl")] == ["7.88.1-10+deb12u8", "7.88.1-10+deb12u5"]
    assert index.version("curl", "7.88.1-10+deb12u5") == read_packages(INDEX, "main")[0]
    assert "arm-only" not in index
    assert len(index) == 5
    assert [(p.name, str(r)) for p, r in index.providers("mawk-compat")] == [
        ("mawk", "mawk-compat (= 1.3.4)")
    ]
    assert [p.name for p, _ in index.providers("awk")] == ["mawk", "gawk"]
    assert open_index(main) is open_index(main)  # the next plan reuses the scan


def test_stanzas_written_out_of_the_usual_order_and_case_are_read_all_the_same() -> None:
    unusual = textwrap.dedent("""\
        Version: 2
        Package: first
        architecture: amd64
        provides: virtual


        # a comment
        Package: second
        VERSION: 3
        Architecture: all
        Depends: first
    """)
    index = PackageIndex.from_texts([("odd", unusual)], "amd64")
    assert [(p.name, p.version) for p in map(index.candidate, ["first", "second"]) if p] == [
        ("first", "2"),
        ("second", "3"),
    ]
    assert [p.name for p, _ in index.providers("virtual")] == ["first"]
    assert index.rank("first") < index.rank("second")


def test_a_stanza_without_a_version_is_refused_as_parsing_refuses_it() -> None:
    with pytest.raises(ValueError, match="lacks Package or Version"):
        scan(b"Package: a\nVersion: 1\n\nPackage: b\nArchitecture: all\n")
