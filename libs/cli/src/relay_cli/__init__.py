"""The ``relay`` command-line tool."""
