"""`dockyard`: serve the registry, and administer it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from dockyard import __version__
from dockyard.cli import (
    admin,
    artifact,
    catalog,
    customization,
    image,
    loop,
    manifest,
    mirror,
    registry,
    sync,
    tag,
    webhook,
)
from dockyard.config import ConfigError, Settings, load_settings

app = typer.Typer(
    help="Dockyard: a hub for hardened container images.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},  # subcommands inherit them
)
app.add_typer(admin.app, name="admin")
app.add_typer(image.app, name="image")
app.add_typer(manifest.app, name="manifest")
app.add_typer(artifact.app, name="artifact")
app.add_typer(tag.app, name="tag")
app.add_typer(registry.app, name="registry")
app.add_typer(sync.app, name="sync")
app.add_typer(catalog.app, name="catalog")
app.add_typer(mirror.app, name="mirror")
app.add_typer(webhook.app, name="webhook")
app.add_typer(customization.app, name="customization")


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"dockyard {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """Dockyard: a hub for hardened container images."""


@app.command()
def serve(
    data: Annotated[Path | None, typer.Option(help="data folder (default ./data)")] = None,
    listen: Annotated[str | None, typer.Option(help="HOST:PORT (default 127.0.0.1:5000)")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML settings file")] = None,
    workers: Annotated[int | None, typer.Option(help="server processes")] = None,
    blob_listen: Annotated[
        str | None,
        typer.Option(help="HOST:PORT to send big blobs from, with sendfile (default: off)"),
    ] = None,
) -> None:
    """Serve the registry (/v2), the token endpoint and the hub."""
    settings = _settings(config, data=data, listen=listen, workers=workers, blob_listen=blob_listen)
    from granian import Granian
    from granian.constants import Interfaces, Loops

    from dockyard import app as composition

    async def bootstrap() -> None:
        store = composition.open_store(settings)
        try:
            await composition.build_state(settings, store)
        finally:
            await store.db.close()

    loop.run(bootstrap())
    # the workers read the same settings from the environment
    os.environ.update(_as_environment(settings, config))
    typer.echo(f"Dockyard listening on http://{settings.listen}", err=True)
    if settings.blob_listen is not None:
        typer.echo(f"Sending big blobs from http://{settings.blob_listen}", err=True)
    Granian(
        "dockyard.app:from_environment",
        factory=True,
        address=settings.listen_host,
        port=settings.listen_port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        log_enabled=True,
        backlog=2048,
        loop=Loops.uvloop if loop.HAVE_UVLOOP else Loops.asyncio,
    ).serve()


@app.command()
def worker(
    data: Annotated[Path | None, typer.Option(help="data folder (default ./data)")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML settings file")] = None,
    concurrency: Annotated[int | None, typer.Option(help="jobs run at once")] = None,
) -> None:
    """Run background jobs (mirror syncs, webhook deliveries) without serving HTTP; any
    number of workers and servers may share one database, and never run the same job twice."""

    settings = _settings(config, data=data, worker_concurrency=concurrency)
    from dockyard import app as composition

    composition.configure_logging(settings)

    typer.echo("Dockyard worker running; stop it with SIGTERM or Ctrl-C", err=True)
    loop.run(composition.run_worker(settings))


def _settings(config: Path | None, **flags: object) -> Settings:
    try:
        return load_settings(config, **flags)
    except (ConfigError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _as_environment(settings: Settings, config: Path | None) -> dict[str, str]:
    env = {"DOCKYARD_DATA": str(settings.data.resolve()), "DOCKYARD_LISTEN": settings.listen}
    env["DOCKYARD_WORKERS"] = str(settings.workers)
    if settings.blob_listen is not None:
        env["DOCKYARD_BLOB_LISTEN"] = settings.blob_listen
    if config is not None:
        env["DOCKYARD_SERVER_CONFIG"] = str(config.resolve())
    return env


def main() -> None:
    app()
