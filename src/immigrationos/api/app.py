"""The FastAPI application: API routes, the landing page, errors that leak no internals."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, select

from immigrationos import __version__
from immigrationos.accounts.models import User
from immigrationos.api import (
    case_routes,
    departure_routes,
    overstay_routes,
    priority_routes,
    resolve_routes,
    sources_routes,
)
from immigrationos.api.routes import router
from immigrationos.audit.models import AuditEntry
from immigrationos.core.errors import ImmosError
from immigrationos.runtime import Runtime, open_runtime
from immigrationos.sources.models import IngestBatch, Source
from immigrationos.store.engine import transaction

log = logging.getLogger(__name__)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
}


def create_app(runtime: Runtime | None = None) -> FastAPI:
    """The application bound to ``runtime`` (default: the configured one)."""
    app = FastAPI(
        title="ImmigrationOS API",
        version=__version__,
        description="Every read of personal data declares a purpose (header `X-Immos-Purpose`) "
        "and is audited. Sign in with HTTP Basic.",
    )
    app.state.runtime = runtime or open_runtime()
    app.include_router(router)
    app.include_router(sources_routes.router)
    app.include_router(resolve_routes.router)
    app.include_router(resolve_routes.persons_router)
    app.include_router(case_routes.router)
    app.include_router(priority_routes.router)
    app.include_router(overstay_routes.router)  # before /api/departures/{id}
    app.include_router(departure_routes.router)
    case_routes.start_scheduler(app, app.state.runtime)
    app.add_exception_handler(ImmosError, _immos_error)
    app.add_exception_handler(Exception, _internal_error)
    app.middleware("http")(_security_headers)
    app.get("/", response_class=HTMLResponse, include_in_schema=False)(_home)
    app.get("/metrics", tags=["system"], response_class=PlainTextResponse)(_metrics)
    return app


async def _security_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    response = await call_next(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


async def _immos_error(_request: Request, exc: Exception) -> JSONResponse:
    status = exc.http_status if isinstance(exc, ImmosError) else 400
    return JSONResponse({"detail": str(exc)}, status_code=status)


async def _internal_error(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse(
        {"detail": "internal error; the operator's log has the details"}, status_code=500
    )


def _home(request: Request) -> HTMLResponse:
    runtime: Runtime = request.app.state.runtime
    with transaction(runtime.sessions) as session:
        counts = {
            "sources": session.scalar(select(func.count()).select_from(Source)),
            "ingest batches": session.scalar(select(func.count()).select_from(IngestBatch)),
            "records loaded": session.scalar(select(func.sum(IngestBatch.loaded_count))) or 0,
            "accounts": session.scalar(select(func.count()).select_from(User)),
            "audit entries": session.scalar(select(func.count()).select_from(AuditEntry)),
        }
    return templates.TemplateResponse(
        request,
        "home.html",
        {
            "version": __version__,
            "counts": counts,
            "backend": runtime.backend,
            "mode": runtime.settings.mode,
        },
    )


def _metrics(request: Request) -> Response:
    """The departure monitor's figures in the Prometheus text format (aggregates only; the
    review-queue count is an audited read like any other)."""
    from immigrationos.departures import monitor
    from immigrationos.gateway.context import system_context
    from immigrationos.gateway.core import unit_of_work
    from immigrationos.gateway.purposes import Purpose

    runtime: Runtime = request.app.state.runtime
    ctx = system_context(Purpose.DEPARTURE_VERIFICATION, "metrics scrape")
    with unit_of_work(runtime.sessions, ctx) as gw:
        figures = monitor.snapshot(gw)
    return Response(monitor.prometheus_text(figures), media_type="text/plain; version=0.0.4")
