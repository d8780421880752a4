"""`dockyard webhook`'s options, refused before any request is sent."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dockyard.cli.main import app

runner = CliRunner()


@pytest.mark.parametrize(
    "args",
    [
        ["create", "acme/app", "ci", "http://127.0.0.1:9/hook", "--secret-stdin"],
        ["edit", "acme/app", "ci", "--secret-stdin"],
    ],
)
def test_an_empty_secret_on_stdin_is_refused_rather_than_signing_nothing(args: list[str]) -> None:
    result = runner.invoke(app, ["webhook", *args, "--server", "http://127.0.0.1:9"], input="")
    assert result.exit_code == 2
    assert "--secret-stdin read an empty secret" in result.output
