"""`dockyard webhook`: a repository's webhooks and their deliveries, over the management API
(`/api/v1/repositories/REPOSITORY/-/webhooks`; owners of the namespace and site admins)."""

from __future__ import annotations

from typing import Annotated

import typer

from dockyard.cli.common import failed, read_stdin_secret, usage
from dockyard.cli.manage import FormatOption, ServerOption, call, show
from dockyard.client.manage import Json, ManageClient
from dockyard.hub import payloads

app = typer.Typer(
    help="Webhooks: a URL called on every tag pushed or moved in a repository.",
    no_args_is_help=True,
)
COLUMNS = ("id", "name", "url", "has_secret", "active", "created_at")
DELIVERY_COLUMNS = (
    "id",
    "status",
    "attempts",
    "response_status",
    "duration_ms",
    "created_at",
    "delivered_at",
    "error",
)

Repository = Annotated[str, typer.Argument(help="the repository: NAMESPACE/NAME")]
WebhookRef = Annotated[str, typer.Argument(help="the webhook: its id or its name")]
SecretStdin = Annotated[
    bool, typer.Option("--secret-stdin", help="read the signing secret from stdin")
]
GenerateSecret = Annotated[
    bool,
    typer.Option(
        "--generate-secret",
        help="make a signing secret (Standard Webhooks' whsec_ format) and print it once",
    ),
]


def _hooks(repository: str) -> str:
    return f"/repositories/{repository.strip('/')}/-/webhooks"


def _secret(secret_stdin: bool, generate: bool) -> str | None:
    """The secret the options ask for: read from stdin, made here, or None (none given)."""
    if secret_stdin and generate:
        usage("give --secret-stdin or --generate-secret, not both")
    if generate:
        return payloads.new_standard_secret()
    if not secret_stdin:
        return None
    secret = read_stdin_secret()
    if not secret:  # an empty pipe must not turn signing off unnoticed
        usage(
            "--secret-stdin read an empty secret; to sign nothing, leave it out "
            "(or, on edit, give --no-secret)"
        )
    return secret


async def _webhook_id(client: ManageClient, repository: str, ref: str) -> int:
    """The id of the webhook `ref` names (an id, or a name looked up in the listing)."""
    if ref.isdigit():
        return int(ref)
    async for hook in client.pages(_hooks(repository)):
        if hook["name"] == ref:
            return int(hook["id"])
    raise failed(
        f"{repository} has no webhook named {ref!r} (see `dockyard webhook list {repository}`)"
    )


def _show_created(hook: Json, secret: str | None, generated: bool, fmt: str) -> None:
    if generated and fmt == "json":
        show({**hook, "secret": secret}, fmt, ())
        return
    show(hook, fmt, COLUMNS)
    if generated:
        typer.echo(f"secret: {secret}")
        typer.echo("(shown once: receivers verify the webhook-signature header with it)", err=True)


@app.command()
def create(
    repository: Repository,
    name: Annotated[str, typer.Argument(help="a name for it, unique in the repository")],
    url: Annotated[str, typer.Argument(help="the http:// or https:// URL to POST to")],
    secret_stdin: SecretStdin = False,
    generate_secret: GenerateSecret = False,
    active: Annotated[
        bool, typer.Option("--active/--inactive", help="deliver at once, or not yet")
    ] = True,
    server: ServerOption = None,
    fmt: FormatOption = "table",
) -> None:
    """Call URL on every tag pushed or moved in REPOSITORY (by a push, a sync or a mirror)."""
    secret = _secret(secret_stdin, generate_secret)
    body: Json = {"name": name, "url": url, "active": active}
    if secret is not None:
        body["secret"] = secret
    created = call(server, lambda c: c.call("POST", _hooks(repository), body))
    _show_created(created, secret, generate_secret, fmt)


@app.command("list")
def list_(repository: Repository, server: ServerOption = None, fmt: FormatOption = "table") -> None:
    """List the repository's webhooks."""

    async def work(client: ManageClient) -> list[Json]:
        return [hook async for hook in client.pages(_hooks(repository))]

    show(call(server, work), fmt, COLUMNS)


@app.command()
def edit(
    repository: Repository,
    webhook: WebhookRef,
    name: Annotated[str | None, typer.Option(help="a new name")] = None,
    url: Annotated[str | None, typer.Option(help="a new URL")] = None,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="deliver, or stop delivering")
    ] = None,
    secret_stdin: SecretStdin = False,
    generate_secret: GenerateSecret = False,
    no_secret: Annotated[bool, typer.Option("--no-secret", help="stop signing")] = False,
    server: ServerOption = None,
    fmt: FormatOption = "table",
) -> None:
    """Change what is given; the rest stays."""
    secret = _secret(secret_stdin, generate_secret)
    if no_secret and secret is not None:
        usage("--no-secret removes the secret: give it alone")
    body: Json = {"name": name, "url": url, "active": active, "secret": "" if no_secret else secret}
    body = {key: value for key, value in body.items() if value is not None}
    if not body:
        usage("nothing to change: give --name, --url, --active/--inactive or a secret option")

    async def work(client: ManageClient) -> Json:
        hook_id = await _webhook_id(client, repository, webhook)
        return await client.call("PATCH", f"{_hooks(repository)}/{hook_id}", body)

    _show_created(call(server, work), secret, generate_secret, fmt)


@app.command()
def delete(repository: Repository, webhook: WebhookRef, server: ServerOption = None) -> None:
    """Delete the webhook and its delivery history."""

    async def work(client: ManageClient) -> int:
        hook_id = await _webhook_id(client, repository, webhook)
        await client.call("DELETE", f"{_hooks(repository)}/{hook_id}")
        return hook_id

    typer.echo(f"deleted webhook {call(server, work)} of {repository}")


@app.command()
def deliveries(
    repository: Repository,
    webhook: WebhookRef,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="at most this many")] = 20,
    server: ServerOption = None,
    fmt: FormatOption = "table",
) -> None:
    """The webhook's latest deliveries, newest first (--format json: with payload and answer)."""

    async def work(client: ManageClient) -> list[Json]:
        hook_id = await _webhook_id(client, repository, webhook)
        path = f"{_hooks(repository)}/{hook_id}/deliveries"
        found: list[Json] = []
        async for delivery in client.pages(path, {"limit": str(min(limit, 100))}):
            found.append(delivery)
            if len(found) == limit:
                break
        return found

    show(call(server, work), fmt, DELIVERY_COLUMNS)


@app.command()
def redeliver(
    repository: Repository,
    webhook: WebhookRef,
    delivery: Annotated[int, typer.Argument(help="the delivery's id (see `deliveries`)")],
    server: ServerOption = None,
) -> None:
    """Send a delivery's very payload again (same webhook-id, a new timestamp)."""

    async def work(client: ManageClient) -> Json:
        hook_id = await _webhook_id(client, repository, webhook)
        path = f"{_hooks(repository)}/{hook_id}/deliveries/{delivery}/redeliver"
        return await client.call("POST", path)

    typer.echo(f"queued job {call(server, work)['job_id']}")
