"""`dockyard tag ls`: the tags of a repository, one per line (as regctl prints them)."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from dockyard.cli.common import Places, fail, place_argument, run, usage

app = typer.Typer(help="List tags.", no_args_is_help=True)


def _patterns(values: list[str] | None, flag: str) -> list[re.Pattern[str]]:
    compiled = []
    for value in values or []:
        try:
            compiled.append(re.compile(value))
        except re.error as exc:
            usage(f"{flag} {value!r} is not a regular expression: {exc}")
    return compiled


@app.command("ls")
def ls(
    repo: Annotated[str, typer.Argument(help="host/repo, or ocidir://PATH for a layout")],
    include: Annotated[
        list[str] | None,
        typer.Option("--include", metavar="REGEX", help="only tags matching (anchored)"),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", metavar="REGEX", help="leave out tags matching (anchored)"),
    ] = None,
) -> None:
    """List the tags of REPO."""
    place = place_argument(repo, "repository")
    allow = _patterns(include, "--include")
    deny = _patterns(exclude, "--exclude")
    if place.layout is not None and not place.layout.is_dir():
        fail(f"no OCI image layout at {place.layout}")

    async def work(places: Places) -> list[str]:
        return await places.target(place).tag_list(place.reference)

    for tag in run(work):
        if allow and not any(p.fullmatch(tag) for p in allow):
            continue
        if any(p.fullmatch(tag) for p in deny):
            continue
        typer.echo(tag)


app.command("list", hidden=True, help="Same as ls.")(ls)
