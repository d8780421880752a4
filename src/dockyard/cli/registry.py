"""`dockyard registry …`: regctl's `login`, `logout`, `set` and `config`, over the client
settings in `$DOCKYARD_CONFIG/registries.json` (written 0600: it holds credentials)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from dockyard.cli.common import fail, read_stdin_secret, run_async, usage
from dockyard.client.hosts import Client
from dockyard.client.registry import RegistryClient
from dockyard.client.settings import (
    CONFIG_FILE,
    ClientConfig,
    Credential,
    RegistrySettings,
    TLSMode,
    config_dir,
    normalize_registry,
)
from dockyard.config import ConfigError
from dockyard.oci.reference import DOCKER_HUB

app = typer.Typer(help="Registry logins and settings.", no_args_is_help=True)

TOKEN_USER = "<token>"
"""As in regctl: log in with this user name to store the password as an identity token."""
PEM_MARKER = "-----BEGIN"

HostArgument = Annotated[
    str, typer.Argument(help="registry host[:port] (default docker.io)", show_default=False)
]


def _host(text: str) -> str:
    try:
        return normalize_registry(text)
    except ValueError as exc:
        usage(str(exc))


def _load() -> tuple[ClientConfig, Path]:
    path = config_dir() / CONFIG_FILE
    try:
        return ClientConfig.load(path), path
    except ConfigError as exc:
        fail(str(exc))


def _save(config: ClientConfig, path: Path) -> None:
    try:
        config.save(path)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")


@app.command("login")
def login(
    host: HostArgument = DOCKER_HUB,
    user: Annotated[str | None, typer.Option("--user", "-u", help="user name")] = None,
    password: Annotated[
        str | None, typer.Option("--pass", "-p", help="password or access token (visible to ps)")
    ] = None,
    pass_stdin: Annotated[
        bool, typer.Option("--pass-stdin", help="read the password or token from stdin")
    ] = False,
    skip_check: Annotated[
        bool, typer.Option("--skip-check", help="store without checking with the registry")
    ] = False,
) -> None:
    """Check credentials with the registry (GET /v2/) and store them."""
    name = _host(host)
    if password is not None and pass_stdin:
        usage("give the password with --pass or --pass-stdin, not both")
    if user is None:
        if pass_stdin or not sys.stdin.isatty():
            usage("a user name is needed: --user/-u USER")
        user = typer.prompt("Username").strip()
    if pass_stdin:
        password = read_stdin_secret()
    elif password is None:
        if not sys.stdin.isatty():
            usage("no password: use --pass-stdin (or --pass)")
        password = typer.prompt("Password", hide_input=True)
    if not user or not password:
        usage("user name and password must not be empty")
    if user == TOKEN_USER:
        credential = Credential(identity_token=password)
    else:
        credential = Credential(username=user, password=password)

    config, path = _load()
    settings = config.update(name, credential=credential)
    if not skip_check:
        _verify(settings)
    _save(config, path)
    who = "with a token" if user == TOKEN_USER else f"as {user}"
    typer.echo(f"logged in to {name} {who}; credentials stored in {path}", err=True)


def _verify(settings: RegistrySettings) -> None:
    """Ping the registry with `settings` (its new credential only, never Docker's)."""
    checking = ClientConfig()
    checking.set(settings)

    async def ping() -> None:
        async with RegistryClient(Client(checking)) as registry:
            await registry.ping(settings.name)

    run_async(ping, f"login to {settings.name} failed, nothing stored")


@app.command("logout")
def logout(host: HostArgument = DOCKER_HUB) -> None:
    """Forget the stored credentials of a registry."""
    name = _host(host)
    config, path = _load()
    if not config.logout(name):
        typer.echo(f"not logged in to {name}", err=True)
        return
    _save(config, path)
    typer.echo(f"logged out of {name}", err=True)


@app.command("set")
def set_(
    host: HostArgument = DOCKER_HUB,
    tls: Annotated[
        TLSMode | None,
        typer.Option(
            "--tls", help="enabled (verified HTTPS), insecure (unverified HTTPS), disabled (HTTP)"
        ),
    ] = None,
    cacert: Annotated[
        str | None,
        typer.Option(
            "--cacert",
            help='CA certificates to trust: PEM text (as regctl: "$(cat ca.pem)") or a file',
        ),
    ] = None,
    req_per_sec: Annotated[
        float | None, typer.Option("--req-per-sec", min=0, help="requests per second (0: no limit)")
    ] = None,
    req_concurrent: Annotated[
        int | None,
        typer.Option("--req-concurrent", min=0, help="concurrent requests (0: no limit)"),
    ] = None,
    blob_chunk: Annotated[
        int | None,
        typer.Option("--blob-chunk", min=0, help="upload blobs in chunks of this many bytes"),
    ] = None,
) -> None:
    """Set how to reach a registry; options not given keep their value."""
    name = _host(host)
    changes: dict[str, Any] = {}
    if tls is not None:
        changes["tls"] = tls
    if cacert is not None:
        changes.update(_ca_changes(cacert))
    if req_per_sec is not None:
        changes["req_per_sec"] = req_per_sec
    if req_concurrent is not None:
        changes["req_concurrent"] = req_concurrent
    if blob_chunk is not None:
        changes["blob_chunk"] = blob_chunk
    config, path = _load()
    try:
        config.update(name, **changes)
    except ValueError as exc:  # pydantic's ValidationError
        usage(str(exc).replace("\n", "; "))
    _save(config, path)


def _ca_changes(cacert: str) -> dict[str, Any]:
    if not cacert:
        return {"ca_pem": None, "ca_file": None}
    if cacert.lstrip().startswith(PEM_MARKER):
        return {"ca_pem": cacert, "ca_file": None}
    file = Path(cacert).expanduser()
    if not file.is_file():
        usage(f"--cacert {cacert!r} is neither PEM text nor a file")
    return {"ca_file": file.resolve(), "ca_pem": None}


@app.command("config")
def show_config(
    host: Annotated[str | None, typer.Argument(help="one registry (default: all)")] = None,
) -> None:
    """Show the stored settings (passwords and tokens left out) as JSON."""
    config, _ = _load()
    if host is not None:
        name = _host(host)
        if name not in config.registries:
            typer.echo(f"no settings stored for {name}", err=True)
            return
        shown: Any = _public(config.registries[name])
    else:
        shown = {key: _public(settings) for key, settings in sorted(config.registries.items())}
    typer.echo(json.dumps(shown, indent=2))


def _public(settings: RegistrySettings) -> dict[str, Any]:
    data: dict[str, Any] = settings.model_dump(mode="json", exclude={"credential"})
    credential = settings.credential
    if credential is not None:
        data["user"] = credential.username
        data["logged_in"] = True
    return data
