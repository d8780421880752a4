"""`dockyard catalog`: the upstream catalog of a Dockyard (site admins add entries)."""

from __future__ import annotations

from typing import Annotated

import typer

from dockyard.cli.common import fail, is_plain_http, read_stdin_secret
from dockyard.cli.manage import FormatOption, ServerOption, call, cell, show
from dockyard.client.manage import ApiError, Json, ManageClient

app = typer.Typer(help="The catalog of upstream repositories to mirror.", no_args_is_help=True)
COLUMNS = ("name", "kind", "source", "attestation_source", "description")
CheckOption = Annotated[
    bool, typer.Option("--check/--no-check", help="read the source's tags now (default: yes)")
]


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="the entry's name; mirrors become dhi-NAME")],
    source: Annotated[str, typer.Option(help="the images' repository: HOST/REPOSITORY")],
    kind: Annotated[str, typer.Option(help="image or chart")] = "image",
    description: Annotated[str, typer.Option(help="one line about it")] = "",
    attestations: Annotated[
        str | None,
        typer.Option(help="the repository of their signed attestations, if elsewhere"),
    ] = None,
    tls: Annotated[str, typer.Option(help="to the source: enabled, insecure or disabled")] = (
        "enabled"
    ),
    attestations_tls: Annotated[str | None, typer.Option(help="to the attestations")] = None,
    username: Annotated[str | None, typer.Option("--username", "-u")] = None,
    pass_stdin: Annotated[bool, typer.Option(help="read the upstream password from stdin")] = False,
    eol: Annotated[
        str | None, typer.Option(help="regular expression of end-of-life tags (anchored)")
    ] = None,
    check: CheckOption = True,
    server: ServerOption = None,
) -> None:
    """Add an upstream repository to the catalog; prints the URL upstream notifies, then
    checks that the source answers by reading its tags."""
    body: Json = {
        "name": name,
        "kind": kind,
        "source": source,
        "source_tls": tls,
        "description": description,
        "attestation_source": attestations,
        "attestation_tls": attestations_tls,
        "username": username,
        "password": read_stdin_secret() if pass_stdin else None,
        "eol_pattern": eol,
    }
    created = call(
        server,
        lambda c: c.call("POST", "/catalog", {k: v for k, v in body.items() if v is not None}),
    )
    typer.echo(f"added {created['name']}")
    typer.echo(f"upstream notifies: {created['hook_url']} (shown once)")
    _check_source(server, name, check)


def _check_source(server: str | None, name: str, check: bool) -> None:
    """Read the entry's tags now, so a source that does not answer (a wrong host, TLS mode or
    password) shows at once rather than at the first mirror sync. A failure is a warning:
    the entry is kept, and says how to fix it."""
    later = f"its tags are read at every mirror sync, and now by `dockyard catalog refresh {name}`"
    if not check:
        typer.echo(f"{name}: not checked; {later}")
        return

    async def refresh(client: ManageClient) -> Json | str:
        try:
            return await client.call("POST", f"/catalog/{name}/refresh")
        except ApiError as exc:
            return exc.message

    entry = call(server, refresh)
    if isinstance(entry, str):
        fix = "--tls disabled" if is_plain_http(entry) else "--source … --tls …"
        typer.echo(
            f"warning: {name}: the source does not answer: {entry}. Fix the entry with "
            f"`dockyard catalog edit {name} {fix}` (or its credentials); {later}",
            err=True,
        )
        return
    count = sum(len(v["tags"]) for v in entry["variants"])
    typer.echo(f"{name}: {count} tags in {len(entry['variants'])} variants read from upstream")


@app.command()
def edit(
    name: Annotated[str, typer.Argument(help="the entry to change")],
    source: Annotated[str | None, typer.Option(help="the images' repository")] = None,
    tls: Annotated[str | None, typer.Option(help="to the source: enabled, insecure, disabled")] = (
        None
    ),
    description: Annotated[str | None, typer.Option(help="one line about it")] = None,
    attestations: Annotated[
        str | None, typer.Option(help="the attestations' repository ('' removes it)")
    ] = None,
    attestations_tls: Annotated[str | None, typer.Option(help="to the attestations")] = None,
    username: Annotated[
        str | None, typer.Option("--username", "-u", help="'' removes the credentials")
    ] = None,
    pass_stdin: Annotated[bool, typer.Option(help="read the upstream password from stdin")] = False,
    eol: Annotated[
        str | None, typer.Option(help="end-of-life tags, anchored ('' removes the pattern)")
    ] = None,
    check: CheckOption = True,
    server: ServerOption = None,
) -> None:
    """Change an entry (site admins): its source, TLS, credentials, attestations, description
    or end-of-life pattern; mirrors use it from their next sync."""
    given: dict[str, str | None] = {
        "source": source,
        "source_tls": tls,
        "description": description,
        "attestation_source": attestations,
        "attestation_tls": attestations_tls,
        "username": username,
        "eol_pattern": eol,
    }
    body: Json = {key: (value or None) for key, value in given.items() if value is not None}
    if pass_stdin:
        body["password"] = read_stdin_secret()
    if not body:
        fail("nothing to change: name at least one option (see --help)", 2)
    call(server, lambda c: c.call("PATCH", f"/catalog/{name}", body))
    typer.echo(f"changed {name}: {', '.join(sorted(body))}")
    reaching = {"source", "source_tls", "username", "password"}
    if reaching & set(body):
        _check_source(server, name, check)


@app.command("list")
def list_(server: ServerOption = None, fmt: FormatOption = "table") -> None:
    """List the catalog."""

    async def work(client: ManageClient) -> list[Json]:
        return [item async for item in client.pages("/catalog")]

    show(call(server, work), fmt, COLUMNS)


@app.command("show")
def show_entry(name: str, server: ServerOption = None, fmt: FormatOption = "table") -> None:
    """Show an entry: its tags by variant (end-of-life marked) and where it is mirrored."""
    entry = call(server, lambda c: c.call("GET", f"/catalog/{name}"))
    if fmt == "json":
        show(entry, fmt, ())
        return
    show(entry, fmt, COLUMNS)
    for variant in entry["variants"]:
        tags = [t["tag"] + (" (end of life)" if t["eol"] else "") for t in variant["tags"]]
        typer.echo(f"{variant['name']}: {', '.join(tags)}")
    mirrored = entry["mirrored_to"]
    typer.echo(
        "mirrored to: " + (cell([m["repository"] for m in mirrored]) if mirrored else "nowhere yet")
    )


@app.command()
def refresh(name: str, server: ServerOption = None) -> None:
    """Read the entry's tags from upstream now."""
    entry = call(server, lambda c: c.call("POST", f"/catalog/{name}/refresh"))
    count = sum(len(v["tags"]) for v in entry["variants"])
    typer.echo(f"{name}: {count} tags in {len(entry['variants'])} variants")


@app.command()
def remove(name: str, server: ServerOption = None) -> None:
    """Remove an entry that is mirrored nowhere."""
    call(server, lambda c: c.call("DELETE", f"/catalog/{name}"))
    typer.echo(f"removed {name}")
