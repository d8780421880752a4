"""`dockyard customization`: mirrored images customized into images Dockyard keeps rebuilt,
over the management API, reading and writing Docker's customization YAML."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from dockyard.build.errors import InvalidCustomization
from dockyard.build.model import parse_customization, to_fields
from dockyard.cli.common import fail, usage
from dockyard.cli.manage import FormatOption, ServerOption, call, show
from dockyard.client.manage import Json, ManageClient

app = typer.Typer(
    help="Customizations: packages, files, accounts and settings added to mirrored images, "
    "rebuilt whenever their inputs change.",
    no_args_is_help=True,
)
build_app = typer.Typer(help="A customization's builds.", no_args_is_help=True)
app.add_typer(build_app, name="build")

COLUMNS = ("id", "name", "namespace", "results", "created_by", "updated_at")
BUILD_COLUMNS = ("id", "repository", "tag", "trigger", "status", "digest", "finished_at", "error")
ENDED = ("succeeded", "unchanged", "failed", "superseded")

Id = Annotated[str, typer.Argument(help="the customization's id (see `customization list`)")]
File = Annotated[Path, typer.Argument(help="the customization YAML (- for stdin)")]
Wait = Annotated[bool, typer.Option(help="show the builds until they end")]


def _read(path: Path) -> Json:
    """The document's fields, checked here first so a mistake is named before any request."""
    text = sys.stdin.read() if str(path) == "-" else _file_text(path)
    try:
        custom = parse_customization(text)
    except InvalidCustomization as exc:
        fail("\n".join(f"{field}: {reason}" for field, reason in exc.problems))
    fields: Json = to_fields(custom)
    return fields


def _file_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")


def _row(item: Json) -> Json:
    results = [f"{t['destination']}:{t['result_tag']}" for t in item.get("targets", [])]
    return {**item, "results": results}


def _yaml(document: Json) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


@app.command()
def prepare(
    repository: Annotated[
        str | None, typer.Argument(help="the mirrored repository: ORG/dhi-NAME")
    ] = None,
    tag: Annotated[str | None, typer.Argument(help="the base image's tag")] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="show what building this customization would do"),
    ] = None,
    name: Annotated[str, typer.Option(help="the customization's name")] = "custom",
    platform: Annotated[list[str] | None, typer.Option(help="os/arch (repeatable)")] = None,
    server: ServerOption = None,
    fmt: Annotated[str, typer.Option("--format", help="text or json (with -f)")] = "text",
) -> None:
    """Print a customization YAML to start from (REPOSITORY TAG, as `docker dhi customization
    prepare`), or with -f FILE the review of what its build would do, written nowhere."""
    if file is not None:
        body = _read(file)
        plan = call(server, lambda c: c.call("POST", "/customizations/prepare", body))
        if fmt == "json":
            show(plan, "json", ())
        else:
            typer.echo(_plan_text(plan), nl=False)
        return
    if repository is None or tag is None:
        usage("give REPOSITORY and TAG for a scaffold, or -f FILE for the plan of one")
    scaffold: dict[str, Any] = {
        "name": name,
        "targets": [{"destination": repository, "tag": tag}],
        "contents": {"packages": [], "artifacts": []},
        "paths": [],
        "accounts": {"root": False, "users": [], "groups": []},
        "environment": {},
        "labels": {},
        "annotations": {},
        "entrypoint": [],
        "cmd": [],
        "platforms": platform or ["linux/amd64"],
        "compression": "GZIP",
    }
    typer.echo(_yaml(scaffold), nl=False)


def _plan_text(plan: Any) -> str:
    """The plan as a person reads it."""
    lines = []
    for target in plan:
        base = target["base"]
        lines.append(
            f"{target['destination']}:{base['tag']} ({base['digest']}) -> "
            f"{target['destination']}:{target['result_tag']}"
        )
        for entry in target["platforms"]:
            lines.append(f"  {entry['platform']}: base {entry['base']}")
            packages = entry.get("packages")
            if packages:
                lines.append(
                    f"    packages from {packages['distribution']} ({packages['architecture']}):"
                )
                for p in packages["install"]:
                    was = f" (replaces {p['replaces']})" if p["replaces"] else ""
                    lines.append(
                        f"      {p['action']} {p['name']} {p['version']}{was}, "
                        f"{p['download_bytes'] / 1024:.0f} KiB: {p['why']}"
                    )
                if packages["base_has"]:
                    lines.append(f"    the base already has: {', '.join(packages['base_has'])}")
            for artifact in entry.get("artifacts", []):
                lines.append(
                    f"    artifact {artifact['name']} ({artifact['digest']}): "
                    f"{artifact['files']} files, {artifact['bytes']} bytes"
                )
            for p in entry["paths"]:
                lines.append(f"    file {p['path']} ({p['mode']}, {p['bytes']} bytes)")
            accounts = entry["accounts"]
            if accounts["added"]:
                lines.append(f"    accounts added: {', '.join(accounts['added'])}")
            lines.append(f"    runs as: {accounts['runs_as'] or '(the base default)'}")
            for warning in entry["warnings"]:
                lines.append(f"    warning: {warning}")
    return "\n".join(lines) + "\n"


@app.command()
def create(
    file: File, wait: Wait = False, server: ServerOption = None, fmt: FormatOption = "table"
) -> None:
    """Keep the customization FILE describes; each target's first build starts at once."""
    body = _read(file)
    body.pop("id", None)

    async def work(client: ManageClient) -> Json:
        created = await client.call("POST", "/customizations", body)
        if wait:
            await _follow(client, created["id"], 1)
        return created

    show(_row(call(server, work)), fmt, COLUMNS)


@app.command()
def edit(
    file: File, wait: Wait = False, server: ServerOption = None, fmt: FormatOption = "table"
) -> None:
    """Replace a customization with FILE (which names it by its `id`); it is rebuilt."""
    body = _read(file)
    uid = body.get("id")
    if not uid:
        usage(f"{file} has no id: `customization get ID > FILE` writes one to edit")

    async def work(client: ManageClient) -> Json:
        before = await client.call("GET", f"/customizations/{uid}/builds", params={"limit": "1"})
        edited = await client.call("PUT", f"/customizations/{uid}", body)
        if wait:
            known = before["items"][0]["id"] if before["items"] else 0
            await _follow(client, str(uid), 1, after=known)
        return edited

    show(_row(call(server, work)), fmt, COLUMNS)


@app.command()
def get(
    uid: Id,
    server: ServerOption = None,
    fmt: Annotated[str, typer.Option("--format", help="yaml (for edit) or json")] = "yaml",
) -> None:
    """Print a customization as YAML with its id: edit it and give it to `edit`."""
    found = call(server, lambda c: c.call("GET", f"/customizations/{uid}"))
    if fmt == "json":
        show(found, "json", ())
    elif fmt == "yaml":
        typer.echo(_yaml(found["document"]), nl=False)
    else:
        usage(f"--format must be yaml or json, not {fmt!r}")


@app.command("list")
def list_(
    org: Annotated[str | None, typer.Option(help="only this organization's")] = None,
    repository: Annotated[str | None, typer.Option(help="only those building on it")] = None,
    server: ServerOption = None,
    fmt: FormatOption = "table",
) -> None:
    """List the customizations you can see."""
    params = {k: v for k, v in (("org", org), ("repository", repository)) if v}

    async def work(client: ManageClient) -> list[Json]:
        return [_row(c) async for c in client.pages("/customizations", params)]

    show(call(server, work), fmt, COLUMNS)


@app.command()
def delete(
    uids: Annotated[list[str], typer.Argument(help="the ids of the customizations")],
    delete_tags: Annotated[bool, typer.Option(help="also delete the tags they built")] = False,
    server: ServerOption = None,
) -> None:
    """Stop keeping customizations rebuilt (their tags stay unless --delete-tags)."""

    async def work(client: ManageClient) -> None:
        for uid in uids:
            params = {"delete_tags": "true"} if delete_tags else None
            await client.call("DELETE", f"/customizations/{uid}", params=params)
            typer.echo(f"deleted {uid}", err=True)

    call(server, work)


@build_app.command("list")
def build_list(uid: Id, server: ServerOption = None, fmt: FormatOption = "table") -> None:
    """The customization's builds, newest first."""

    async def work(client: ManageClient) -> list[Json]:
        return [b async for b in client.pages(f"/customizations/{uid}/builds")]

    show(call(server, work), fmt, BUILD_COLUMNS)


@build_app.command("get")
def build_get(
    uid: Id,
    build: Annotated[int, typer.Argument(help="the build's id")],
    server: ServerOption = None,
    fmt: FormatOption = "json",
) -> None:
    """One build: trigger, status, the lock of its inputs, what changed."""
    show(
        call(server, lambda c: c.call("GET", f"/customizations/{uid}/builds/{build}")),
        fmt,
        BUILD_COLUMNS,
    )


@build_app.command("logs")
def build_logs(
    uid: Id,
    build: Annotated[int, typer.Argument(help="the build's id")],
    server: ServerOption = None,
) -> None:
    """A build's log."""
    typer.echo(
        call(server, lambda c: c.text(f"/customizations/{uid}/builds/{build}/log")), nl=False
    )


@build_app.command("start")
def build_start(uid: Id, wait: Wait = False, server: ServerOption = None) -> None:
    """Build each target now, without waiting for an input to change."""

    async def work(client: ManageClient) -> None:
        queued = await client.call("POST", f"/customizations/{uid}/builds")
        typer.echo(f"queued builds {', '.join(map(str, queued['builds']))}", err=True)
        if wait:
            await _follow(client, uid, len(queued["builds"]), after=min(queued["builds"]) - 1)

    call(server, work)


async def _follow(client: ManageClient, uid: str, count: int, after: int = 0) -> None:
    """Print each build's status as it changes until `count` builds after `after` ended;
    exit 1 when one failed."""
    shown: dict[int, str] = {}
    while True:
        page = await client.call("GET", f"/customizations/{uid}/builds", params={"limit": "20"})
        builds = [b for b in page["items"] if b["id"] > after]
        for b in reversed(builds):
            if shown.get(b["id"]) != b["status"]:
                shown[b["id"]] = b["status"]
                typer.echo(
                    f"build {b['id']} of {b['repository']}:{b['tag']}: {b['status']}", err=True
                )
        ended = [b for b in builds if b["status"] in ENDED]
        if len(ended) >= count:
            failed = [b for b in ended if b["status"] == "failed"]
            if failed:
                fail(f"build {failed[0]['id']} failed: {failed[0]['error']}")
            return
        await asyncio.sleep(0.5)
