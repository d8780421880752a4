"""Repository names and tags as the distribution spec constrains them."""

from __future__ import annotations

import re

from dockyard.oci.errors import NameInvalid, TagInvalid

MAX_NAME_LENGTH = 255
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_PATTERN = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
TAG_PATTERN = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")


def validate_name(name: str) -> str:
    """Return `name` if it is a valid repository name, else raise `NameInvalid` saying why."""
    if not name:
        raise NameInvalid("repository name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise NameInvalid(
            f"repository name is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed"
        )
    if name != name.lower():
        raise NameInvalid(f"repository name {name!r} must be lowercase")
    if NAME_PATTERN.fullmatch(name) is None:
        raise NameInvalid(
            f"invalid repository name {name!r}: path components are lowercase letters and digits, "
            "separated by '.', '_', '__' or '-', joined by '/'"
        )
    return name


def validate_tag(tag: str) -> str:
    """Return `tag` if it is a valid tag, else raise `TagInvalid` saying why."""
    if TAG_PATTERN.fullmatch(tag) is None:
        raise TagInvalid(
            f"invalid tag {tag!r}: up to 128 characters of letters, digits, '_', '.' and '-', "
            "not starting with '.' or '-'"
        )
    return tag


def namespace_of(name: str) -> str | None:
    """The namespace (first path component) of a repository name, None for one-part names."""
    head, sep, _ = name.partition("/")
    return head if sep else None
