"""``immos serve``: run the API and pages with uvicorn."""

from __future__ import annotations

from typing import Any

import typer
import uvicorn

from immigrationos.api.app import create_app
from immigrationos.api.serving import HTTP_PROTOCOL
from immigrationos.cli.common import console, friendly_errors
from immigrationos.core.settings import get_settings
from immigrationos.runtime import Runtime, open_runtime


def run_server(runtime: Runtime, host: str, port: int) -> None:
    """Serve ``runtime`` until interrupted (one process)."""
    console.print(f"serving on http://{host}:{port} (API docs at /docs); Ctrl-C stops")
    runtime.checkpoint_in_background()  # SQLite: requests' commits wait for no checkpoint
    _uvicorn(create_app(runtime), host, port, runtime.settings.log_level)


def run_workers(host: str, port: int, workers: int, log_level: str) -> None:
    """Serve with ``workers`` processes, each opening the configured runtime (``IMMOS_*``)."""
    console.print(
        f"serving on http://{host}:{port} with {workers} worker processes (API docs at /docs); "
        "Ctrl-C stops"
    )
    _uvicorn(
        "immigrationos.api.app:create_app", host, port, log_level, factory=True, workers=workers
    )


def _uvicorn(app: Any, host: str, port: int, log_level: str, **more: Any) -> None:
    """uvicorn as every ``immos serve`` runs it: no access log (the audit log records who
    read what), ``TCP_NODELAY`` on every connection."""
    uvicorn.run(
        app, host=host, port=port, log_level=log_level, access_log=False, http=HTTP_PROTOCOL,
        **more,
    )  # fmt: skip


@friendly_errors
def serve_cmd(
    host: str | None = typer.Option(None, help="Bind address (default IMMOS_HOST)."),
    port: int | None = typer.Option(None, help="Port (default IMMOS_PORT)."),
    workers: int = typer.Option(
        1, min=1, help="Server processes (one per core; more than one needs PostgreSQL)."
    ),
) -> None:
    """Serve the REST API and pages on the configured database."""
    settings = get_settings()
    host, port = host or settings.host, port or settings.port
    if workers == 1:
        run_server(open_runtime(settings), host, port)
        return
    if settings.effective_database_url.startswith("sqlite"):
        raise typer.BadParameter(
            "several worker processes need PostgreSQL (IMMOS_DATABASE_URL): SQLite takes one "
            "writer at a time",
            param_hint="--workers",
        )
    open_runtime(settings).close()  # migrate once, before the workers start
    run_workers(host, port, workers, settings.log_level)
