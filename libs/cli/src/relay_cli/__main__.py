"""``python -m relay_cli`` is the ``relay`` command."""

from relay_cli.main import app

app()
