"""``relay``: operator commands."""

from __future__ import annotations

import getpass

import typer

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
