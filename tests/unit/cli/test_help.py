"""`--help` (and `-h`) of every command and group, found by walking the app, and `--version`:
a command added later is covered without touching this file."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

import dockyard
from dockyard.cli.main import app

runner = CliRunner()


def _paths(command: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command's path below `command` (Typer has its own copy of click, so groups are
    recognized by their `commands`)."""
    found = [path]
    children: dict[str, object] = getattr(command, "commands", {})
    for name, child in sorted(children.items()):
        found += _paths(child, (*path, name))
    return found


PATHS = _paths(typer.main.get_command(app))


def test_the_walk_finds_the_nested_commands() -> None:
    assert ("manifest", "head") in PATHS
    assert ("admin", "user", "create") in PATHS
    assert len(PATHS) > 40


@pytest.mark.parametrize("path", PATHS, ids=lambda path: " ".join(path) or "dockyard")
def test_help_of_every_command(path: tuple[str, ...]) -> None:
    for flag in ("--help", "-h"):
        result = runner.invoke(app, [*path, flag])
        shown = " ".join(path)
        assert result.exit_code == 0, f"{shown} {flag}: {result.output}{result.exception!r}"
        assert "Usage:" in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"dockyard {dockyard.__version__}"
