"""``relay``: operator commands."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path

import typer

from relay_cli.dev import run_dev
from relay_platform.tenants import hash_api_key

app = typer.Typer(help="Recipe Relay operator tool.", no_args_is_help=True)
keys = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys, name="keys")


@keys.command("hash")
def keys_hash(
    key: str | None = typer.Argument(None, help="The API key; prompted for (not echoed) when omitted."),
) -> None:
    """Print the SHA-256 hash to put under ``api-keys[].sha256`` in a tenant file."""
    raw = key if key is not None else getpass.getpass("API key: ")
    if not raw:
        raise typer.BadParameter("the key must not be empty")
    typer.echo(hash_api_key(raw))


@app.command("dev")
def dev(
    port: int = typer.Option(8080, help="Port of the ingest API."),
    var: Path = typer.Option(Path("var"), help="Directory for the embedded stack's data and logs."),
) -> None:
    """Run the whole suite on this machine (embedded broker, SQLite, local storage); Ctrl-C stops it."""
    root = Path.cwd()
    if not (root / "services").is_dir():
        raise typer.BadParameter("run from the repository root (the folder with services/)")
    raise typer.Exit(asyncio.run(run_dev(root, var.resolve(), port)))
