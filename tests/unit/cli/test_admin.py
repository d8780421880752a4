"""`dockyard admin …` on a data folder."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dockyard import app as composition
from dockyard.auth.accounts import Accounts
from dockyard.cli.admin import _run, parse_duration
from dockyard.cli.main import app
from dockyard.config import load_settings
from dockyard.registry.context import Store
from dockyard.registry.repositories import create_in

runner = CliRunner()


@pytest.fixture(autouse=True)
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site in `tmp_path`, created as a new user creates one; no DOCKYARD_* from outside."""
    for key in [key for key in os.environ if key.startswith("DOCKYARD_")]:
        monkeypatch.delenv(key)
    result = runner.invoke(app, ["admin", "init", "--data", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"created a Dockyard site in {tmp_path}" in result.output
    assert "Created the site admin: user 'admin', password " in result.output
    return tmp_path


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


def _repository(data: Path, name: str) -> None:
    """Create repository `name` in the data folder, as a first push does."""

    async def create() -> None:
        store = composition.open_store(load_settings(data=data))
        try:
            await composition.prepare(store)
            async with store.db.write() as conn:
                await create_in(store.db, conn, name)
        finally:
            await store.db.close()

    asyncio.run(create())


def test_repo_set_sparse_indexes(tmp_path: Path) -> None:
    _admin(tmp_path, "user", "create", "alice")
    _repository(tmp_path, "alice/app")
    assert "sparse indexes site" in _admin(tmp_path, "repo", "set", "alice/app")
    shown = _admin(tmp_path, "repo", "set", "alice/app", "--sparse-indexes", "on")
    assert shown.strip() == "alice/app: visibility private, immutable tags off, sparse indexes on"
    assert "sparse indexes off" in _admin(
        tmp_path, "repo", "set", "alice/app", "--sparse-indexes", "off"
    )
    result = runner.invoke(
        app,
        ["admin", "repo", "set", "alice/app", "--sparse-indexes", "yes", "--data", str(tmp_path)],
    )
    assert result.exit_code == 2
    assert "on, off or site" in result.output


def test_admin_commands_refuse_a_folder_without_a_site_and_name_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # run from another folder, without --data
    result = runner.invoke(app, ["admin", "user", "create", "bob"])
    assert result.exit_code == 1
    assert f"no Dockyard site in the data folder {elsewhere / 'data'}" in result.output
    assert f"dockyard admin init --data {elsewhere / 'data'}" in result.output
    assert list(elsewhere.iterdir()) == []  # nothing was created there
    result = runner.invoke(app, ["admin", "gc", "--data", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert f"no Dockyard site in the data folder {tmp_path / 'none'}" in result.output
    assert not (tmp_path / "none").exists()


def test_init_leaves_an_existing_site_alone(site: Path) -> None:
    _admin(site, "user", "create", "alice")
    assert f"a Dockyard site is already in {site}" in _admin(site, "init")
    assert (
        "already taken"
        in runner.invoke(app, ["admin", "user", "create", "alice", "--data", str(site)]).output
    )


def test_init_says_where_the_admin_password_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKYARD_ADMIN_PASSWORD", "from-the-environment")
    output = _admin(tmp_path / "other", "init")
    assert "password from environment variable DOCKYARD_ADMIN_PASSWORD" in output


def test_the_admin_password_from_a_settings_file_is_said_to_come_from_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # what `dockyard serve --config FILE` prints when it creates the site admin
    from dockyard import app as composition
    from dockyard.config import load_settings

    config = tmp_path / "dockyard.yaml"
    config.write_text(f"data: {tmp_path / 'served'}\nadmin_password: from-the-file\n")
    settings = load_settings(config)
    assert settings.source_of("admin_password") == str(config)
    assert settings.source_of("listen") is None

    async def bootstrap() -> None:
        store = composition.open_store(settings)
        try:
            await composition.build_state(settings, store)
        finally:
            await store.db.close()

    asyncio.run(bootstrap())
    assert f"user 'admin', password from {config}" in capsys.readouterr().out


@pytest.mark.peers
def test_a_database_without_a_site_is_refused_and_shown_without_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_database_url: str
) -> None:
    monkeypatch.setenv("DOCKYARD_DATABASE_URL", postgres_database_url)
    result = runner.invoke(app, ["admin", "user", "create", "bob", "--data", str(tmp_path / "d")])
    assert result.exit_code == 1
    assert "no Dockyard site in the database postgresql+asyncpg://dockyard:***@" in result.output
    assert ":dockyard@" not in result.output
    assert "created a Dockyard site in" in _admin(tmp_path / "d", "init")
    assert "created user 'bob'" in _admin(tmp_path / "d", "user", "create", "bob")


def test_token_create_says_to_sign_in_with_the_organizations_name(site: Path) -> None:
    _admin(site, "user", "create", "alice")
    _admin(site, "org", "create", "acme", "--owner", "alice")
    args = ["admin", "token", "create", "--user", "alice", "--scope", "read", "--data", str(site)]
    personal = runner.invoke(app, args)
    org_token = runner.invoke(app, [*args, "--org", "acme"])
    for result, login in ((personal, "alice"), (org_token, "acme")):
        assert result.exit_code == 0, result.output
        assert result.stdout.strip().startswith("dky_")  # stdout holds the token alone
        assert result.stdout.count("\n") == 1
        hint = f"dockyard registry login -u {login} --pass-stdin 127.0.0.1:5000"
        assert hint in result.stderr
