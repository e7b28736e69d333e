"""The web application: the pages each role works in, on top of the API's own dependencies.

``mount(app)`` adds the static assets (vendored: the machines have no internet), the sign-in
and purpose pages, every page router, and the error handlers that answer a browser with a
page and the API with JSON. Each page module serves one area and calls the same view
functions as the API route that returns the same data.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from immigrationos.accounts.sessions import Throttle
from immigrationos.core.errors import ImmosError
from immigrationos.web import (
    alert_pages,
    analysis_pages,
    auth_pages,
    case_pages,
    errors,
    governance_pages,
    people_pages,
    redress_pages,
)
from immigrationos.web.render import STATIC

#: Page modules, mounted in this order (static paths before their ``{id}`` siblings).
PAGE_MODULES = (
    auth_pages,
    people_pages,
    case_pages,
    analysis_pages,
    governance_pages,
    alert_pages,
    redress_pages,
)


def mount(app: FastAPI) -> None:
    """Add the web application to ``app`` (created by :func:`immigrationos.api.app.create_app`)."""
    settings = app.state.runtime.settings
    app.state.sign_in_throttle = Throttle(settings.sign_in_attempts_per_minute)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in PAGE_MODULES:
        app.include_router(module.router)
    app.add_exception_handler(StarletteHTTPException, errors.http_error)
    app.add_exception_handler(RequestValidationError, errors.validation_error)
    app.add_exception_handler(ImmosError, errors.immos_error)
    app.add_exception_handler(Exception, errors.internal_error)


__all__ = ["mount"]
