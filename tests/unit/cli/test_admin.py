"""`dockyard admin …` on a data folder."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dockyard import app as composition
from dockyard.cli.admin import parse_duration
from dockyard.cli.main import app
from dockyard.config import load_settings
from dockyard.registry.repositories import create_in

runner = CliRunner()


def _admin(data: Path, *args: str, stdin: str | None = None) -> str:
    result = runner.invoke(app, ["admin", *args, "--data", str(data)], input=stdin)
    assert result.exit_code == 0, result.output
    return result.output


def test_accounts_tokens_and_repository_settings(tmp_path: Path) -> None:
    assert "created user 'alice'" in _admin(
        tmp_path, "user", "create", "alice", "--password-stdin", stdin="pw\n"
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
