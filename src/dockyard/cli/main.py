"""`dockyard`: serve the registry, and administer it.

The command groups live in their own modules, imported only when asked for: `dockyard sync
once` imports the sync command and what it needs, not the server, the database or the hub
(a warm sync is mostly start-up, so start-up is what it costs). `app` (the whole command
tree, for `dockyard --help` and the tests) is built on first use.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dockyard import __version__
from dockyard.cli import loop

if TYPE_CHECKING:
    from dockyard.config import Settings

# name → module of each command group, in the order `--help` lists them
GROUPS = {
    "admin": "dockyard.cli.admin",
    "image": "dockyard.cli.image",
    "manifest": "dockyard.cli.manifest",
    "artifact": "dockyard.cli.artifact",
    "tag": "dockyard.cli.tag",
    "registry": "dockyard.cli.registry",
    "sync": "dockyard.cli.sync",
    "catalog": "dockyard.cli.catalog",
    "mirror": "dockyard.cli.mirror",
    "webhook": "dockyard.cli.webhook",
    "customization": "dockyard.cli.customization",
}


def build(only: str | None = None) -> typer.Typer:
    """The command tree: `serve`, `worker` and every group, or only the group `only`."""
    root = typer.Typer(
        help="Dockyard: a hub for hardened container images.",
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"]},  # subcommands inherit them
    )
    root.callback()(_root)
    root.command()(serve)
    root.command()(worker)
    for name, module in GROUPS.items():
        if only is None or name == only:
            root.add_typer(importlib.import_module(module).app, name=name)
    return root


def __getattr__(name: str) -> typer.Typer:
    if name == "app":
        app = build()
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"dockyard {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """Dockyard: a hub for hardened container images."""


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
    from dockyard.config import ConfigError, load_settings

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
    """The `dockyard` command: only the group named on the command line is imported."""
    wanted = sys.argv[1] if len(sys.argv) > 1 else None
    build(wanted if wanted in GROUPS else None)()
