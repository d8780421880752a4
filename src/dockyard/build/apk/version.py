"""Alpine package versions, ordered as apk-tools orders them (its src/version.c, 2.14 and 3.x).

A version is `digit{.digit}...{letter}{_suffix{digits}}...{~hash}{-rN}`. Two versions are
read token by token side by side; the first pair that differs decides. Numbers compare by
value, except a later number with a leading zero on either side, where both compare as text
(`1.01 < 1.1`, `8.2.0015 < 8.2.002`). Suffixes rank `_alpha < _beta < _pre < _rc < (none) <
_cvs < _svn < _git < _hg < _p`. When one version runs out first, the other is greater unless
what it has left starts with a pre-release suffix (`1.0_rc1 < 1.0 < 1.0-r1 < 1.0.1`).
A dependency's constraint (`>=`, `<`, `~`, `=`, `><` …) is a mask of the outcomes it accepts.
"""

from __future__ import annotations

from dataclasses import dataclass

EQUAL, LESS, GREATER, FUZZY, CONFLICT = 1, 2, 4, 8, 16
ANY = EQUAL | LESS | GREATER
CHECKSUM = LESS | GREATER
"""`><`: the constraint names a package checksum (`Q1…`), not a version."""

# token kinds, in the order the grammar allows them to follow each other
_INITIAL, _DIGIT, _LETTER, _SUFFIX, _SUFFIX_NO, _HASH, _REVISION, _END, _INVALID = range(9)
_SUFFIXES = {
    "alpha": 1,
    "beta": 2,
    "pre": 3,
    "rc": 4,
    "cvs": 6,
    "svn": 7,
    "git": 8,
    "hg": 9,
    "p": 10,
}
_NO_SUFFIX = 5
_HEX = frozenset("0123456789abcdefABCDEF")
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")


@dataclass
class _Token:
    kind: int
    text: str = ""
    number: int = 0
    suffix: int = 0


class _Reader:
    """Reads a version's tokens one at a time, as apk's token_first/token_next do."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.token = _Token(_INITIAL)
        self._digits(_INITIAL)

    def _digits(self, kind: int) -> None:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos].isdigit():
            self.pos += 1
        text = self.text[start : self.pos]
        self.token = _Token(kind, text, int(text)) if text else _Token(_INVALID)

    def _span(self, allowed: frozenset[str]) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in allowed:
            self.pos += 1
        return self.text[start : self.pos]

    def next(self) -> None:
        """Advance to the next token (END at the end, INVALID where the grammar breaks)."""
        if self.pos >= len(self.text):
            self.token = _Token(_END)
            return
        previous, char = self.token.kind, self.text[self.pos]
        if char in _LOWER and previous <= _DIGIT:
            self.pos += 1
            self.token = _Token(_LETTER, char)
        elif (char == "." and previous <= _DIGIT) or char.isdigit():
            self.pos += char == "."
            if previous in (_INITIAL, _DIGIT):
                self._digits(_DIGIT)
            elif previous == _SUFFIX and char != ".":
                self._digits(_SUFFIX_NO)
            else:
                self.token = _Token(_INVALID)
        elif char == "_" and previous <= _SUFFIX_NO:
            self.pos += 1
            name = self._span(_LOWER)
            rank = _SUFFIXES.get(name, 0)
            self.token = _Token(_SUFFIX, name, suffix=rank) if rank else _Token(_INVALID)
        elif char == "~" and previous < _HASH:
            self.pos += 1
            value = self._span(_HEX)
            self.token = _Token(_HASH, value) if value else _Token(_INVALID)
        elif self.text.startswith("-r", self.pos) and previous < _REVISION:
            self.pos += 2
            self._digits(_REVISION)
        else:
            self.token = _Token(_INVALID)


def _compare_tokens(a: _Token, b: _Token) -> int:
    if a.kind == _DIGIT and (a.text.startswith("0") or b.text.startswith("0")):
        x: object = a.text
        y: object = b.text
    elif a.kind in (_INITIAL, _DIGIT, _SUFFIX_NO, _REVISION):
        x, y = a.number, b.number
    elif a.kind == _SUFFIX:
        x, y = a.suffix, b.suffix
    else:  # letters and commit hashes: as text
        x, y = a.text, b.text
    if x < y:  # type: ignore[operator]
        return LESS
    if x > y:  # type: ignore[operator]
        return GREATER
    return EQUAL


def compare(a: str, b: str, *, fuzzy: bool = False) -> int:
    """`LESS`, `EQUAL` or `GREATER`: how version `a` stands to `b`. With `fuzzy`, `a` equals
    every `b` it begins with (`3.6.9 ~ 3.6`)."""
    ra, rb = _Reader(a), _Reader(b)
    while ra.token.kind == rb.token.kind and ra.token.kind < _END:
        outcome = _compare_tokens(ra.token, rb.token)
        if outcome != EQUAL:
            return outcome
        ra.next()
        rb.next()
    ta, tb = ra.token, rb.token
    if ta.kind == tb.kind or (tb.kind == _END and fuzzy):
        return EQUAL
    if ta.kind == _SUFFIX and ta.suffix < _NO_SUFFIX:
        return LESS
    if tb.kind == _SUFFIX and tb.suffix < _NO_SUFFIX:
        return GREATER
    return LESS if ta.kind > tb.kind else GREATER


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1, for sorting."""
    outcome = compare(a, b)
    return -1 if outcome == LESS else 1 if outcome == GREATER else 0


def is_valid(version: str) -> bool:
    """Whether `version` follows apk's grammar to its end."""
    reader = _Reader(version)
    while reader.token.kind < _END:
        reader.next()
    return reader.token.kind == _END


def operator_mask(operator: str) -> int:
    """The outcomes an operator (`<`, `<=`, `=`, `~`, `>=`, `>~`, `><` …) accepts; 0 if it
    is not one."""
    mask = 0
    for char in operator:
        if char == "<":
            mask |= LESS
        elif char == ">":
            mask |= GREATER
        elif char == "=":
            mask |= EQUAL
        elif char == "~":
            mask |= FUZZY | EQUAL
        else:
            return 0
    return mask


def matches(version: str, mask: int, wanted: str) -> bool:
    """Whether `version` meets the constraint `mask wanted` (`CONFLICT` in the mask inverts)."""
    ok = (mask & ANY) == ANY or bool(compare(version, wanted, fuzzy=bool(mask & FUZZY)) & mask)
    return not ok if mask & CONFLICT else ok
