"""The ``immos`` command line: one Typer app, one module per area."""
