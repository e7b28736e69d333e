"""Refusals and errors, shaped for whoever asked: JSON for the API, a page for a browser.

A browser that is not signed in is sent to the sign-in page (and back afterwards); one that
has not chosen a purpose is sent to the purpose page; anything else is an error page that says
what went wrong in the words the rules use, and never shows internals (stack traces, SQL).
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from immigrationos.api.deps import PurposeNeeded
from immigrationos.core.errors import ImmosError
from immigrationos.web.render import page

log = logging.getLogger(__name__)
INTERNAL = "internal error; the operator's log has the details"
TITLES = {
    400: "The request could not be used",
    401: "Sign in required",
    403: "Not permitted",
    404: "Not found",
    409: "Conflict",
    422: "Some values are not valid",
    429: "Too many attempts",
    500: "Something went wrong",
}


def wants_page(request: Request) -> bool:
    """True for a browser page request (not the API, the OpenAPI docs or the metrics)."""
    path = request.url.path
    if path.startswith(("/api/", "/openapi", "/docs", "/redoc", "/metrics", "/static/")):
        return False
    return "application/json" not in request.headers.get("accept", "")


def _back(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return quote(target, safe="/?=&")


def _redirect(request: Request, to: str) -> Response:
    if request.headers.get("HX-Request") == "true":  # htmx follows this header, not a 303
        return Response(status_code=204, headers={"HX-Redirect": to})
    return RedirectResponse(to, status_code=303)


def error_page(request: Request, status: int, message: str) -> Response:
    """The error page (the signed-in layout when the request got that far)."""
    ctx = getattr(request.state, "ctx", None)
    title = TITLES.get(status, "Error")
    return page(request, "error.html.j2", ctx, status=status, title=title, message=message)


def respond(
    request: Request, status: int, message: str, headers: dict[str, str] | None
) -> Response:
    """A refusal or error as JSON or as a page."""
    if not wants_page(request):
        return JSONResponse({"detail": message}, status_code=status, headers=headers)
    if status == 401:
        return _redirect(request, f"/login?next={_back(request)}")
    return error_page(request, status, message)


async def http_error(request: Request, exc: Exception) -> Response:
    """Handler for HTTPException (refusals raised by the dependencies and routes)."""
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, PurposeNeeded) and wants_page(request):
        return _redirect(request, f"/purpose?next={_back(request)}")
    headers = dict(exc.headers) if exc.headers else None
    return respond(request, exc.status_code, str(exc.detail), headers)


async def immos_error(request: Request, exc: Exception) -> Response:
    """Handler for the domain's errors (validation, not found, refused by a rule)."""
    status = exc.http_status if isinstance(exc, ImmosError) else 400
    return respond(request, status, str(exc), None)


async def validation_error(request: Request, exc: Exception) -> Response:
    """Handler for request validation: the API keeps FastAPI's detail; a page explains."""
    assert isinstance(exc, RequestValidationError)
    if not wants_page(request):
        from fastapi.exception_handlers import request_validation_exception_handler

        return await request_validation_exception_handler(request, exc)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'input'}: {e.get('msg')}"
        for e in exc.errors()
    )
    return error_page(request, 422, problems)


async def internal_error(request: Request, exc: Exception) -> Response:
    """Handler of last resort: log it, say nothing about it."""
    log.exception("unhandled error", exc_info=exc)
    return respond(request, 500, INTERNAL, None)


__all__ = ["HTTPException", "http_error", "immos_error", "internal_error", "validation_error"]
