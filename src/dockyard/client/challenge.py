"""`WWW-Authenticate` challenges (RFC 7235) and token scopes (`repository:NAME:pull,push`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# RFC 7230 token characters; auth-param values are tokens or quoted strings.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_SCHEME = re.compile(rf"\s*({_TOKEN})")
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))')
_TOKEN68 = re.compile(r"\s*[A-Za-z0-9._~+/-]+=*\s*(?=,|$)")
_SEPARATORS = re.compile(r"[\s,]*")
_ESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge: its scheme (lowercased) and parameters (names lowercased)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def scopes(self) -> frozenset[str]:
        """The scopes the challenge asks for (`scope` may list several, space-separated)."""
        return frozenset(self.params.get("scope", "").split())


def parse_challenges(values: Iterable[str]) -> list[Challenge]:
    """Every challenge in the `WWW-Authenticate` header values, in order.

    A header may hold several challenges separated by commas, e.g.
    `Bearer realm="https://auth/token",service="reg",scope="repository:a:pull", Basic realm="x"`.
    Text that does not parse ends that header's parsing instead of raising: a server's odd
    header must not hide the challenges before it.
    """
    found: list[Challenge] = []
    for value in values:
        found.extend(_parse_one(value))
    return found


def _parse_one(value: str) -> list[Challenge]:
    found: list[Challenge] = []
    pos = _skip(value, 0)
    while pos < len(value):
        scheme = _SCHEME.match(value, pos)
        if scheme is None:
            break
        pos = scheme.end()
        params: dict[str, str] = {}
        if (token68 := _TOKEN68.match(value, pos)) is not None and not _PARAM.match(value, pos):
            pos = token68.end()
        while (param := _PARAM.match(value, pos)) is not None:
            quoted, bare = param.group(2), param.group(3)
            text = _ESCAPE.sub(r"\1", quoted) if quoted is not None else bare
            params[param.group(1).lower()] = text
            pos = _skip(value, param.end())
        found.append(Challenge(scheme.group(1).lower(), params))
        pos = _skip(value, pos)
    return found


def _skip(value: str, pos: int) -> int:
    match = _SEPARATORS.match(value, pos)
    return match.end() if match else pos


def scope_for(repository: str, *actions: str) -> str:
    """The scope `repository:NAME:a,b` (actions sorted, no duplicates)."""
    return f"repository:{repository}:{','.join(sorted(set(actions)))}"


def merge_scopes(*groups: Iterable[str]) -> frozenset[str]:
    """One scope per resource with the union of its actions, e.g. `repository:a:pull` and
    `repository:a:push` become `repository:a:pull,push`; unparsable scopes are kept as given."""
    actions: dict[tuple[str, str], set[str]] = {}
    others: set[str] = set()
    for group in groups:
        for scope in group:
            kind, sep, rest = scope.partition(":")
            name, sep2, listed = rest.rpartition(":")
            if not (sep and sep2 and kind and name):
                others.add(scope)
                continue
            actions.setdefault((kind, name), set()).update(a for a in listed.split(",") if a)
    merged = {f"{kind}:{name}:{','.join(sorted(acts))}" for (kind, name), acts in actions.items()}
    return frozenset(merged | others)


def covers(granted: frozenset[str], needed: frozenset[str]) -> bool:
    """Whether scopes `granted` include every action of `needed`."""
    return merge_scopes(granted, needed) == merge_scopes(granted)
