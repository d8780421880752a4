"""The rules a new password must meet, and the reason given when it does not."""

from __future__ import annotations

import pytest

from dockyard.auth.passwords import MIN_LENGTH, common_passwords, weakness


def test_the_packaged_list_is_read_lowercased() -> None:
    listed = common_passwords()
    assert len(listed) > 19_000
    assert {"password", "123456", "qwertyuiop123", "iloveyou"} <= listed
    assert all(entry == entry.lower().strip() and entry for entry in listed)


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("x" * (MIN_LENGTH - 1), "has 11 characters; it needs at least 12"),
        ("", "has 0 characters"),
        ("y" * 257, "at most 256 are allowed"),
        ("aaaaaaaaaaaaaaaa", "fewer than 5 different characters"),
        ("abababababababab", "fewer than 5 different characters"),
        ("QwertyUIOP123", "is one of the most common passwords"),
        ("  1q2w3e4r5t6y ", "is one of the most common passwords"),
        ("password2024!!", "a common password with digits or symbols added"),
        ("!!!Dragon99999", "a common password with digits or symbols added"),
        ("monkeymonkeymonkey", "repeats a common password or the user name"),
        ("Olivia-Olivia-", "repeats a common password or the user name"),
        ("olivia_2024_x", None),
        ("olivia!2024!!", "the user name with digits or symbols added"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(password: str, reason: str | None) -> None:
    found = weakness(password, "olivia")
    if reason is None:
        assert found is None
    else:
        assert found is not None
        assert reason in found
        assert "choose another" in found or "at most" in found


@pytest.mark.parametrize(
    "password",
    ["correct horse battery staple", "olivia-password", "Tr0ub4dor&3-extra", "x7#kQ9!mzP2v"],
)
def test_long_uncommon_passwords_pass(password: str) -> None:
    assert weakness(password, "olivia") is None
