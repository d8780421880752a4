"""What `dockyard catalog` and `dockyard mirror` share: the server they talk to (its
management API, signed in with what `dockyard registry login` stored for its host), output as
a table or JSON, and failures as one line."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from dockyard.cli.common import fail, run_async
from dockyard.client.manage import ApiError, Json, ManageClient
from dockyard.client.settings import ClientConfig, docker_credentials

T = TypeVar("T")
DEFAULT_SERVER = "http://127.0.0.1:5000"

ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        "-s",
        envvar="DOCKYARD_SERVER",
        help=f"the Dockyard to manage (default {DEFAULT_SERVER}); sign in to it first with "
        "`dockyard registry login HOST`",
    ),
]
FormatOption = Annotated[str, typer.Option("--format", help="table or json")]


def call(server: str | None, work: Callable[[ManageClient], Awaitable[T]]) -> T:
    """Run `work` with a client of `server`; an API refusal becomes one line and exit 1."""

    async def main() -> T:
        client = ManageClient(
            server or DEFAULT_SERVER, ClientConfig.load(), docker=docker_credentials()
        )
        try:
            return await work(client)
        except ApiError as exc:
            fail(f"{exc.message} ({exc.code or exc.status})")
        finally:
            await client.close()

    return run_async(main)


def show(data: Json | list[Json], fmt: str, columns: Sequence[str], title: str = "") -> None:
    """Print `data` as JSON, or as a table of `columns`."""
    if fmt == "json":
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    if fmt != "table":
        fail(f"--format must be table or json, not {fmt!r}", 2)
    rows = data if isinstance(data, list) else [data]
    table = Table(title=title or None, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")  # wrapped, never cut short with "…"
    for row in rows:
        table.add_row(*(cell(row.get(column)) for column in columns))
    Console(width=int(os.environ.get("COLUMNS", "160"))).print(table)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value)
    return str(value)
