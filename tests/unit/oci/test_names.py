"""Repository names and tags: the distribution spec's grammar and limits."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.oci.errors import NameInvalid, TagInvalid
from dockyard.oci.names import (
    MAX_NAME_LENGTH,
    NAME_PATTERN,
    TAG_PATTERN,
    namespace_of,
    validate_name,
    validate_tag,
)

# The grammars as the distribution spec writes them, to check ours against.
SPEC_NAME = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*")
SPEC_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")

components = st.from_regex(r"[a-z0-9]{1,8}(?:(?:\.|_|__|-{1,3})[a-z0-9]{1,8}){0,2}", fullmatch=True)
names = st.lists(components, min_size=1, max_size=5).map("/".join)
tags = st.from_regex(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", fullmatch=True)


@pytest.mark.parametrize(
    "name",
    [
        "nginx",
        "library/nginx",
        "jwilder/nginx-proxy",
        "google-containers/pause",
        "a/b/c/d/e",
        "my_org/my__app",
        "a.b/c-d",
        "a---b",
        "0/1",
        "a" * MAX_NAME_LENGTH,
        "/".join(["ab"] * 85),  # 254 characters of components
    ],
)
def test_valid_names_are_returned(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("", "must not be empty"),
        ("a" * (MAX_NAME_LENGTH + 1), "256 characters long; at most 255"),
        ("org/" + "a" * 252, "256 characters long"),
        ("Nginx", "must be lowercase"),
        ("myorg/MyApp", "must be lowercase"),
        ("a..b", "invalid repository name 'a..b'"),
        ("a//b", "invalid repository name"),
        ("/a", "invalid repository name"),
        ("a/", "invalid repository name"),
        ("-a", "invalid repository name"),
        ("a-", "invalid repository name"),
        (".a", "invalid repository name"),
        ("a___b", "invalid repository name"),
        ("a._b", "invalid repository name"),
        ("a b", "invalid repository name"),
        ("a:b", "invalid repository name"),
        ("a@b", "invalid repository name"),
        ("ñginx", "invalid repository name"),
        ("a\n", "invalid repository name"),
    ],
)
def test_invalid_names_say_why(name: str, says: str) -> None:
    with pytest.raises(NameInvalid) as caught:
        validate_name(name)
    assert says in caught.value.message
    assert caught.value.code == "NAME_INVALID"
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "tag",
    ["latest", "1.25", "v1.2.3", "24.04", "_private", "A", "a" * 128, "sha256-" + "a" * 64, "0"],
)
def test_valid_tags_are_returned(tag: str) -> None:
    assert validate_tag(tag) == tag


@pytest.mark.parametrize(
    "tag", ["", ".hidden", "-dash", "a" * 129, "a:b", "a/b", "a@b", "a b", "ünï", "tag\n"]
)
def test_invalid_tags_say_why(tag: str) -> None:
    with pytest.raises(TagInvalid) as caught:
        validate_tag(tag)
    assert repr(tag) in caught.value.message
    assert "up to 128 characters" in caught.value.message
    # the spec has no TAG_INVALID code; a bad tag is answered as a bad manifest reference
    assert caught.value.code == "MANIFEST_INVALID"


@pytest.mark.parametrize(
    ("name", "namespace"),
    [
        ("nginx", None),
        ("library/nginx", "library"),
        ("a/b/c", "a"),
        ("jwilder/nginx-proxy", "jwilder"),
    ],
)
def test_namespace_is_the_first_component(name: str, namespace: str | None) -> None:
    assert namespace_of(name) == namespace


@given(names)
def test_generated_names_are_valid(name: str) -> None:
    if len(name) <= MAX_NAME_LENGTH:
        assert validate_name(name) == name
    else:
        with pytest.raises(NameInvalid):
            validate_name(name)


@given(tags)
def test_generated_tags_are_valid(tag: str) -> None:
    assert validate_tag(tag) == tag


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=40))
def test_name_pattern_agrees_with_the_spec(text: str) -> None:
    assert (NAME_PATTERN.fullmatch(text) is None) == (SPEC_NAME.fullmatch(text) is None)


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=140))
def test_tag_pattern_agrees_with_the_spec(text: str) -> None:
    assert (TAG_PATTERN.fullmatch(text) is None) == (SPEC_TAG.fullmatch(text) is None)


@given(st.text(max_size=300))
def test_validate_name_raises_only_name_invalid(text: str) -> None:
    with contextlib.suppress(NameInvalid):
        assert validate_name(text) == text


@given(st.text(max_size=200))
def test_validate_tag_raises_only_tag_invalid(text: str) -> None:
    with contextlib.suppress(TagInvalid):
        assert validate_tag(text) == text
