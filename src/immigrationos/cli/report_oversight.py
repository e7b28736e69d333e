"""``immos report oversight``: the oversight report (HTML, JSON)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this report's command to the ``immos report`` group."""
