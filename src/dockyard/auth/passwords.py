"""What a new password must be: long enough, and not a common one (NIST SP 800-63B's rules).

The common passwords are `common-passwords.txt.gz` beside this module (where it comes from:
`common-passwords.NOTICE`). A password is refused when it is on that list, when it is a listed
password or the user's own name with digits or symbols around it (`password2024!`), when it
repeats one (`dragondragon`), or when it has too few different characters (`aaaaaaaaaaaa`).
"""

from __future__ import annotations

import gzip
import string
from functools import cache
from importlib import resources

MIN_LENGTH = 12
MAX_LENGTH = 256
MIN_DISTINCT = 5
_ADVICE = "choose another, e.g. a few unrelated words"
_DECORATION = string.digits + string.punctuation + string.whitespace


@cache
def common_passwords() -> frozenset[str]:
    """The list, lowercased; read once per process, on the first password set (about 2 MiB)."""
    packaged = resources.files(__package__).joinpath("common-passwords.txt.gz")
    with gzip.open(packaged.open("rb"), "rt", encoding="utf-8") as lines:
        return frozenset(line.strip() for line in lines if line.strip())


def weakness(password: str, name: str = "") -> str | None:
    """Why `password` may not be the password of user `name`, or None when it may."""
    if len(password) < MIN_LENGTH:
        return (
            f"the password has {len(password)} characters; it needs at least {MIN_LENGTH} "
            f"({_ADVICE})"
        )
    if len(password) > MAX_LENGTH:
        return f"the password has {len(password)} characters; at most {MAX_LENGTH} are allowed"
    if len(set(password)) < MIN_DISTINCT:
        return f"the password uses fewer than {MIN_DISTINCT} different characters ({_ADVICE})"
    lowered = password.lower().strip()
    if lowered in common_passwords():
        return f"the password is one of the most common passwords ({_ADVICE})"
    core = lowered.strip(_DECORATION)
    if _guessable(core, name):
        what = "the user name" if core == name.lower() else "a common password"
        return f"the password is {what} with digits or symbols added ({_ADVICE})"
    unit = _repeated_unit(lowered)
    if unit is not None and _guessable(unit.strip(_DECORATION), name):
        return f"the password repeats a common password or the user name ({_ADVICE})"
    return None


def _guessable(text: str, name: str) -> bool:
    """A common password or the user's own name: what an attacker tries first."""
    return bool(text) and (text == name.lower() or text in common_passwords())


def _repeated_unit(text: str) -> str | None:
    """The shortest `unit` with `text == unit * k` for some k > 1, or None."""
    for size in range(1, len(text) // 2 + 1):
        if len(text) % size == 0 and text[:size] * (len(text) // size) == text:
            return text[:size]
    return None
