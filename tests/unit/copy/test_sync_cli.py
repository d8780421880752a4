"""`dockyard sync` on the command line without registries: what a wrong config or command line
says, and its exit codes (2: the config or the command line is wrong)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from dockyard.cli.sync import app, print_plan, print_run
from dockyard.copy.sync_report import RepositoryResult, SyncReport, TagResult
from dockyard.oci.reference import Reference

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_CONFIG", str(tmp_path / "config"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "regsync.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("command", ["check", "once", "server"])
def test_an_unknown_key_is_named_with_its_line(tmp_path: Path, command: str) -> None:
    path = write(
        tmp_path,
        "version: 1\nsync:\n  - source: a.test/x\n    target: b.test/x\n"
        "    type: repository\n    tag:\n      allow: ['1']\n",
    )
    result = runner.invoke(app, [command, "-c", str(path)])
    assert result.exit_code == 2
    assert f"error: {path}, line 6: unknown key 'tag' in sync[0]" in result.stderr
    assert "did you mean 'tags'?" in result.stderr


def test_a_missing_config_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", "-c", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "cannot read the sync config" in result.stderr


def test_the_config_is_required() -> None:
    result = runner.invoke(app, ["check"])
    assert result.exit_code == 2
    assert "--config" in result.stderr


def test_a_wrong_format_is_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\n")
    result = runner.invoke(app, ["check", "-c", str(path), "--format", "yaml"])
    assert result.exit_code == 2
    assert "--format must be text or json" in result.stderr


def test_a_wrong_progress_is_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\n")
    result = runner.invoke(app, ["once", "-c", str(path), "--progress", "loud"])
    assert result.exit_code == 2
    assert "unknown progress format" in result.stderr


def test_an_empty_config_checks_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\n")
    result = runner.invoke(app, ["check", "-c", str(path), "--format", "json"])
    assert result.exit_code == 0
    assert '"repositories": []' in result.stdout


def test_the_server_needs_a_schedule(tmp_path: Path) -> None:
    path = write(tmp_path, "sync:\n  - {source: a.test/x:1, target: b.test/x:1, type: image}\n")
    result = runner.invoke(app, ["server", "-c", str(path)])
    assert result.exit_code == 2
    assert "no sync entry has a schedule or an interval" in result.stderr


def test_the_config_can_come_from_standard_input() -> None:
    result = runner.invoke(app, ["check", "-c", "-", "--format", "json"], input="version: 1\n")
    assert result.exit_code == 0
    assert '"dry_run": true' in result.stdout


def _report(*changes: str) -> SyncReport:
    source, target = Reference.parse("a.test/app"), Reference.parse("b.test/app")
    tags = tuple(
        TagResult(0, source.with_tag(f"t{i}"), target.with_tag(f"t{i}"), change)
        for i, change in enumerate(changes)
    )
    repository = RepositoryResult(0, str(source), str(target), tags)
    return SyncReport(dry_run=False, repositories=(repository,), seconds=0.25, entries=(0,))


def _printed(show: Callable[[Console], None]) -> str:
    out = io.StringIO()
    show(Console(file=out, width=160, highlight=False))
    return out.getvalue()


def test_check_prints_a_header_over_its_columns() -> None:
    printed = _printed(lambda console: print_plan(_report("add", "unchanged"), console))
    lines = printed.splitlines()
    header = lines.index("  status     tags  names")
    assert lines[header + 1].split() == ["add", "1", "t0"]


def test_a_server_run_that_changed_nothing_is_one_line() -> None:
    quiet = _printed(lambda console: print_run(_report("unchanged", "unchanged"), console, "T"))
    assert quiet == "T ok: nothing changed in entries 0 (2 tags unchanged, 0 skipped; 0.2s)\n"
    busy = _printed(lambda console: print_run(_report("add", "unchanged"), console, "T"))
    assert busy.startswith("T sync run of entries 0\n")
    assert "added" in busy  # the table's header
