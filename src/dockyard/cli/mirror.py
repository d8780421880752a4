"""`dockyard mirror`: mirror catalog entries into organizations and keep them in sync."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from dockyard.cli.common import fail
from dockyard.cli.manage import FormatOption, ServerOption, call, show
from dockyard.client.manage import Json, ManageClient

app = typer.Typer(help="Mirrored repositories.", no_args_is_help=True)
COLUMNS = (
    "id",
    "entry",
    "repository",
    "status",
    "include_eol",
    "tags_done",
    "tags_total",
    "bytes_done",
    "last_synced_at",
)
RUN_COLUMNS = (
    "id",
    "trigger",
    "outcome",
    "started_at",
    "tags_added",
    "tags_updated",
    "tags_unchanged",
    "referrers_copied",
    "bytes",
    "error",
)


@app.command()
def create(
    entry: Annotated[str, typer.Argument(help="the catalog entry")],
    org: Annotated[str, typer.Option(help="the organization to mirror into (you own it)")],
    repository: Annotated[str | None, typer.Option(help="ORG/NAME (default ORG/dhi-ENTRY)")] = None,
    els: Annotated[bool, typer.Option(help="also mirror end-of-life tags")] = False,
    wait: Annotated[bool, typer.Option(help="show progress until the first sync ends")] = False,
    server: ServerOption = None,
    fmt: FormatOption = "table",
) -> None:
    """Mirror ENTRY into a new private repository of ORG; it keeps receiving new tags."""
    body: Json = {"entry": entry, "org": org, "include_eol": els}
    if repository is not None:
        body["repository"] = repository

    async def work(client: ManageClient) -> Json:
        created = await client.call("POST", "/mirrors", body)
        return await _follow(client, created) if wait else created

    show(call(server, work), fmt, COLUMNS)


async def _follow(client: ManageClient, mirror: Json) -> Json:
    """Print progress until the mirror's latest run ends; the mirror then."""
    last = ""
    while True:
        mirror = await client.call("GET", f"/mirrors/{mirror['id']}")
        runs = (await client.call("GET", f"/mirrors/{mirror['id']}/runs", params={"limit": "1"}))[
            "items"
        ]
        line = (
            f"{mirror['repository']}: {mirror['tags_done']}/{mirror['tags_total']} tags, "
            f"{mirror['bytes_done'] / 1e6:.1f} MB"
        )
        if line != last:
            typer.echo(line, err=True)
            last = line
        if runs and runs[0]["outcome"] != "running":
            if runs[0]["outcome"] == "failed":
                fail(f"the sync failed: {runs[0]['error']}")
            return mirror
        await asyncio.sleep(0.5)


@app.command("list")
def list_(
    org: Annotated[str | None, typer.Option(help="only this organization's")] = None,
    entry: Annotated[str | None, typer.Option(help="only mirrors of this catalog entry")] = None,
    server: ServerOption = None,
    fmt: FormatOption = "table",
) -> None:
    """List the mirrors you can see."""
    params = {k: v for k, v in {"org": org, "entry": entry}.items() if v is not None}

    async def work(client: ManageClient) -> list[Json]:
        return [item async for item in client.pages("/mirrors", params)]

    show(call(server, work), fmt, COLUMNS)


@app.command("show")
def show_mirror(mirror_id: int, server: ServerOption = None, fmt: FormatOption = "table") -> None:
    """Show a mirror, its progress, and its latest runs."""

    async def work(client: ManageClient) -> tuple[Json, list[Json]]:
        mirror = await client.call("GET", f"/mirrors/{mirror_id}")
        runs = await client.call("GET", f"/mirrors/{mirror_id}/runs", params={"limit": "10"})
        return mirror, runs["items"]

    mirror, runs = call(server, work)
    if fmt == "json":
        show({**mirror, "runs": runs}, fmt, ())
        return
    show(mirror, fmt, COLUMNS)
    if mirror.get("status_reason"):
        typer.echo(mirror["status_reason"])
    show(runs, fmt, RUN_COLUMNS, title="runs")


@app.command()
def stop(mirror_id: int, server: ServerOption = None) -> None:
    """Stop mirroring: the repository and its images stay, nothing more arrives."""
    stopped = call(server, lambda c: c.call("POST", f"/mirrors/{mirror_id}/stop"))
    typer.echo(f"stopped mirroring into {stopped['repository']}")


@app.command()
def sync(mirror_id: int, server: ServerOption = None) -> None:
    """Sync a mirror now rather than at its next interval."""
    job = call(server, lambda c: c.call("POST", f"/mirrors/{mirror_id}/sync"))
    typer.echo(f"queued job {job['job_id']}")
