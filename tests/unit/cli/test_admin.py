"""`dockyard admin …` on a data folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dockyard.auth.accounts import Accounts
from dockyard.cli.admin import _run, parse_duration
from dockyard.cli.main import app
from dockyard.registry.context import Store

runner = CliRunner()


def _admin(data: Path, *args: str, stdin: str | None = None) -> str:
    result = runner.invoke(app, ["admin", *args, "--data", str(data)], input=stdin)
    assert result.exit_code == 0, result.output
    return result.output


def test_accounts_tokens_and_repository_settings(tmp_path: Path) -> None:
    assert "created user 'alice'" in _admin(
        tmp_path, "user", "create", "alice", "--password-stdin", stdin="alice-password\n"
    )
    assert "owned by 'alice'" in _admin(tmp_path, "org", "create", "acme", "--owner", "alice")
    _admin(tmp_path, "user", "create", "bob")
    assert "member of 'acme'" in _admin(
        tmp_path, "org", "add-member", "acme", "bob", "--role", "member"
    )
    token = _admin(
        tmp_path, "token", "create", "--user", "alice", "--scope", "read", "--expires", "30d"
    )
    assert token.strip().startswith("dky_")
    org_token = _admin(
        tmp_path, "token", "create", "--user", "alice", "--org", "acme", "--scope", "write"
    )
    assert org_token.strip().startswith("dky_")


def _signs_in(data: Path, name: str, password: str) -> bool:
    async def check(store: Store) -> bool:
        accounts = Accounts(store.db, store.accounts_generation)
        return await accounts.authenticate(name, password) is not None

    return _run(data, check)


def test_set_password_from_stdin_or_a_prompt(tmp_path: Path) -> None:
    _admin(tmp_path, "user", "create", "alice", "--password-stdin", stdin="first-long-password\n")
    assert "changed the password of 'alice'" in _admin(
        tmp_path, "user", "set-password", "alice", "--password-stdin", stdin="second passphrase\n"
    )
    assert not _signs_in(tmp_path, "alice", "first-long-password")
    assert _signs_in(tmp_path, "alice", "second passphrase")
    # asked twice, without echo, when nothing comes on standard input
    typed = "third passphrase\nthird passphrase\n"
    output = _admin(tmp_path, "user", "set-password", "alice", stdin=typed)
    assert "third passphrase" not in output
    assert _signs_in(tmp_path, "alice", "third passphrase")


@pytest.mark.parametrize(
    ("command", "password", "reason"),
    [
        (("create", "bob"), "short-pw", "the password has 8 characters; it needs at least 12"),
        (("create", "bob"), "Password1234", "is one of the most common passwords"),
        (("set-password", "alice"), "qwerty123456", "is one of the most common passwords"),
        (("set-password", "alice"), "Sunshine2024!", "a common password with digits or symbols"),
        (("set-password", "alice"), "alice-1234567", "the user name with digits or symbols"),
        (("set-password", "ghost"), "a fine passphrase", "no user named 'ghost'"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(
    tmp_path: Path, command: tuple[str, str], password: str, reason: str
) -> None:
    _admin(tmp_path, "user", "create", "alice", "--password-stdin", stdin="alice-password\n")
    result = runner.invoke(
        app,
        ["admin", "user", *command, "--password-stdin", "--data", str(tmp_path)],
        input=password + "\n",
    )
    assert result.exit_code == 1
    assert reason in result.output
    assert _signs_in(tmp_path, "alice", "alice-password")


def test_only_owners_create_org_tokens(tmp_path: Path) -> None:
    _admin(tmp_path, "user", "create", "alice")
    _admin(tmp_path, "user", "create", "bob")
    _admin(tmp_path, "org", "create", "acme", "--owner", "alice")
    result = runner.invoke(
        app,
        [
            "admin",
            "token",
            "create",
            "--user",
            "bob",
            "--org",
            "acme",
            "--scope",
            "read",
            "--data",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 1
    assert "only owners of 'acme'" in result.output


def test_duplicate_names_and_unknown_repositories_are_errors(tmp_path: Path) -> None:
    _admin(tmp_path, "user", "create", "alice")
    result = runner.invoke(
        app, ["admin", "org", "create", "alice", "--owner", "alice", "--data", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "already taken" in result.output
    result = runner.invoke(
        app,
        ["admin", "repo", "set", "acme/none", "--visibility", "public", "--data", str(tmp_path)],
    )
    assert result.exit_code == 1
    assert "not known" in result.output


def test_gc_dry_run_on_an_empty_store(tmp_path: Path) -> None:
    assert "would delete 0 blobs" in _admin(tmp_path, "gc", "--dry-run")


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("12h", 43200), ("30d", 2592000)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds
