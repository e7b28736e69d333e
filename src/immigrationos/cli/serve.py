"""``immos serve``: run the API and pages with uvicorn."""

from __future__ import annotations

import typer
import uvicorn

from immigrationos.api.app import create_app
from immigrationos.cli.common import console, friendly_errors
from immigrationos.core.settings import get_settings
from immigrationos.runtime import Runtime, open_runtime


def run_server(runtime: Runtime, host: str, port: int) -> None:
    """Serve ``runtime`` until interrupted."""
    console.print(f"serving on http://{host}:{port} (API docs at /docs); Ctrl-C stops")
    uvicorn.run(
        create_app(runtime),
        host=host,
        port=port,
        log_level=runtime.settings.log_level,
        access_log=False,
    )


@friendly_errors
def serve_cmd(
    host: str | None = typer.Option(None, help="Bind address (default IMMOS_HOST)."),
    port: int | None = typer.Option(None, help="Port (default IMMOS_PORT)."),
) -> None:
    """Serve the REST API and pages on the configured database."""
    settings = get_settings()
    run_server(open_runtime(settings), host or settings.host, port or settings.port)
