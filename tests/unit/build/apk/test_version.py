"""Alpine versions are ordered as apk-tools orders them: the cases below are a selection of
apk-tools' own test/unit/version.data (compare, fuzzy `~` and validity), one of each rule."""

from __future__ import annotations

import itertools

import pytest

from dockyard.build.apk.version import compare_versions, is_valid, matches, operator_mask

# version.data lines `A OP B` (OP as apk_version_result_mask reads it; `!` negates)
ORDERED = [
    ("2.34", ">", "0.1.0_alpha"),
    ("23_foo", ">", "4_beta"),  # an invalid tail: compared up to it, the rest is lower
    ("1.0", "<", "1.0bc"),
    ("0.1.0_alpha", "=", "0.1.0_alpha"),
    ("0.1.0_alpha2", ">", "0.1.0_alpha"),
    ("1.0.4-r3", "<", "1.0.4-r4"),
    ("1.1", ">", "1.1_alpha1"),
    ("1.2.1", ">", "1.2"),
    ("1.2", "<", "1.3_alpha"),
    ("1.3_alpha2", "<", "1.3_alpha3"),
    ("0.7.0", "<", "0.8_beta1"),
    ("2.3.0b-r1", "<", "2.3.0b-r2"),
    ("2.3.0b-r4", ">", "0.12.1"),
    ("0.12.3", ">", "0.12"),
    ("3.1_p16", "<", "3.1_p17"),
    ("3.1_p17", ">", "1.06-r6"),
    ("1.06-r6", "<", "006"),
    ("1.2.2-r1", ">", "1.2.2"),
    ("9.3.4-r2", ">", "9.3.4"),
    ("2.01.01_alpha10", ">", "0.94"),
    ("0.99.3.20040818", ">", "0.7"),
    ("4.2.52_p2-r1", "<", "4.2.52_p4-r2"),
    ("2.18.3-r10", ">", "1.05-r18"),
    ("1.05-r18", "<", "1.05-r19"),
    ("20050718-r1", "<", "20050718-r2"),
    ("3.0.0-r2", "<", "021109-r3"),
    ("3.9_pre20060124", ">", "0.01"),
    ("1.1.7", "<", "6b-r7"),
    ("0.10.0-r1", ">", "0.10.0"),
    ("0.10.0", "<", "0.10.1_rc1"),
    ("2.0.0_rc3-r1", ">", "1.5"),
    ("2.5.1-r8", "<", "2.5.1a-r1"),
    ("1.3.5-r10", ">", "1.3.5-r8"),
    ("1.7", "<", "1.7b"),
    ("1.8.5", "<", "1.8.5_p2"),
    ("2.9.11_pre20051101-r3", ">", "2.9.11_pre20051101"),
    ("0.9.28.1", ">", "0.9.28"),
    ("2.12r-r4", "<", "2.12r-r5"),
    ("7.0.17", "<", "7.0.174"),
    ("1.6.8_p12-r1", ">", "1.6.8_p9-r2"),
    ("0.9.8c-r1", "<", "0.9.8d"),
    ("4.5_p1-r1", ">", "4.5_p1"),
    ("1.3-r0", "<", "1.3.1-r0"),
    ("1.3_pre1-r1", "<", "1.3.2"),
    ("1.0_p10-r0", ">", "1.0_p9-r0"),
    ("0.1.0_alpha_pre2", "<", "0.1.0_alpha"),
    ("1.0.0_pre20191002222144-r0", "<", "1.0.0_pre20210530193627-r0"),
    ("6.0_pre1", "<", "6.0"),
    ("6.0_p1", ">", "6.0"),
    ("8.2.0", "<", "8.2.001"),
    ("8.2.0015", "<", "8.2.002"),  # a leading zero: compared as text
    ("1.0~1234", "<", "1.0~2345"),
    ("1.0~1234-r1", "<", "1.0~2345-r0"),
    ("1.0~1234-r1", ">", "1.0~1234-r0"),
    # fuzzy matches (`~`: the version begins with the other)
    ("3.6.0", "~", "3.6"),
    ("3.6.9", "~", "3.6"),
    ("3.6_pre1", "~", "3.6"),
    ("3.6.9_post1", "~", "3.6"),
    ("3.5", "<~", "3.6"),
    ("3.7", ">~", "3.6"),
    ("3.6.0", "!~", "3.8"),
    ("3.8", "!~", "3.8.1"),
    ("3.8.0.1", "!~", "3.8.1"),
]
VALID = ["1.2", "0.1_pre2", "0.1_pre2~1234abcd", "0.1_p1_pre2", "0.1_git20240101_pre1"]
INVALID = ["", "0.1bc", "0.1a1", "0.1a.1", "0.1_pre2~", "0.1_pre2~1234xbcd",
           "0.1_pre2~1234abcd_pre1", "0.1_foobar", "0.1-pre1.1", "0.1-r", "0.1-r2_pre1",
           "0.1-r2-r3", "0.1-r2.1", ".1", "a", "_pre1", "-r1", "0.1_", "0.1__alpha",
           "0.1_1_alpha"]  # fmt: skip


@pytest.mark.parametrize(("a", "op", "b"), ORDERED)
def test_versions_are_ordered_as_apk_tools_orders_them(a: str, op: str, b: str) -> None:
    negate = op.startswith("!")
    assert matches(a, operator_mask(op.lstrip("!")), b) is not negate


@pytest.mark.parametrize(("a", "op", "b"), [c for c in ORDERED if c[1] in "<>="])
def test_the_order_is_antisymmetric(a: str, op: str, b: str) -> None:
    expected = {"<": -1, "=": 0, ">": 1}[op]
    assert (compare_versions(a, b), compare_versions(b, a)) == (expected, -expected)


@pytest.mark.parametrize("version", VALID)
def test_valid_versions(version: str) -> None:
    assert is_valid(version)


@pytest.mark.parametrize("version", INVALID)
def test_invalid_versions(version: str) -> None:
    assert not is_valid(version)


def test_suffixes_rank_pre_releases_below_the_release_and_patches_above() -> None:
    # a token later in the grammar ranks lower: a revision below a post-release suffix,
    # a suffix below a letter, a letter below another number
    chain = ["1.0_alpha", "1.0_beta", "1.0_pre", "1.0_rc1", "1.0", "1.0-r1", "1.0_cvs",
             "1.0_svn", "1.0_git", "1.0_hg", "1.0_p1", "1.0a", "1.0.1"]  # fmt: skip
    assert all(compare_versions(x, y) < 0 for x, y in itertools.pairwise(chain))
