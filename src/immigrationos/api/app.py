"""The FastAPI application: the API routes, the web pages (:mod:`immigrationos.web`), the
metrics, security headers on every response, and errors that leak no internals."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, PlainTextResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from immigrationos import __version__, web
from immigrationos.api import (
    admin_routes,
    anomaly_routes,
    case_routes,
    departure_routes,
    dossier_routes,
    oversight_routes,
    overstay_routes,
    person_routes,
    priority_routes,
    redress_routes,
    resolve_routes,
    sources_routes,
    transparency_routes,
)
from immigrationos.api.routes import router
from immigrationos.runtime import Runtime, open_runtime

log = logging.getLogger(__name__)
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
        "and is audited. Authenticate with an API token (`Authorization: Bearer immos_…`, "
        "created on the account page), HTTP Basic, or the browser session of the web pages.",
        docs_url=None,  # served below from vendored assets: no CDN
        redoc_url=None,
    )
    app.state.runtime = runtime or open_runtime()
    app.include_router(router)
    app.include_router(sources_routes.router)
    app.include_router(resolve_routes.router)
    app.include_router(resolve_routes.persons_router)
    app.include_router(person_routes.router)  # before resolve's /api/persons/{id}/…
    app.include_router(admin_routes.router)
    app.include_router(case_routes.router)
    app.include_router(priority_routes.router)
    app.include_router(overstay_routes.router)  # before /api/departures/{id}
    app.include_router(departure_routes.router)
    app.include_router(oversight_routes.router)
    app.include_router(transparency_routes.router)
    app.include_router(anomaly_routes.router)
    app.include_router(redress_routes.router)
    app.include_router(dossier_routes.router)
    case_routes.start_scheduler(app, app.state.runtime)
    app.add_middleware(SecurityHeaders)
    app.get("/metrics", tags=["system"], response_class=PlainTextResponse)(_metrics)
    app.get("/docs", include_in_schema=False)(_api_docs)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    web.mount(app)
    return app


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` (and HSTS behind TLS, and ``no-store`` off ``/static``)
    to every response. Plain ASGI: Starlette's ``BaseHTTPMiddleware`` (``app.middleware``)
    passed each response through a memory stream in a task of its own, ~1 ms a request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if https:
                    headers.setdefault("Strict-Transport-Security", "max-age=31536000")
                if not static:
                    headers.setdefault("Cache-Control", "no-store")  # personal data off disk
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, saying that a 422 carries either FastAPI's list of problems
    (request validation) or one message (a domain rule: ``{"detail": "…"}``)."""
    if app.openapi_schema is None:
        spec = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        detail = spec.get("components", {}).get("schemas", {}).get("HTTPValidationError")
        if detail is not None:
            listed = detail["properties"]["detail"]
            detail["properties"]["detail"] = {
                "title": "Detail",
                "anyOf": [{k: v for k, v in listed.items() if k != "title"}, {"type": "string"}],
            }
        app.openapi_schema = spec
    return app.openapi_schema


def _api_docs(request: Request) -> HTMLResponse:
    """Swagger UI for the OpenAPI spec, served from ``/static`` (the machines have no CDN)."""
    return web.render.templates.TemplateResponse(request, "api_docs.html.j2", {})


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
