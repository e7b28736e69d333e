"""Rendering pages: the template environment, the navigation each role sees, and ``page()``.

Every page is a server-rendered Jinja2 template extending ``base.html.j2``, which shows who is
signed in, the purpose they work under (and the case and reason they gave), and the
navigation of their role. HTMX (vendored under ``/static``) swaps fragments for filters and
live panels; every form also works without JavaScript.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from immigrationos import __version__
from immigrationos.accounts.roles import ROLES, Role
from immigrationos.gateway.context import AccessContext
from immigrationos.gateway.purposes import PURPOSE_DESCRIPTIONS, Purpose

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
#: Shared with the standalone reports: the oversight report's sections render on a page too.
REPORT_TEMPLATES = Path(__file__).parents[1] / "oversight" / "templates"
templates = Jinja2Templates(directory=[str(TEMPLATES), str(REPORT_TEMPLATES)])


@dataclass(frozen=True)
class NavItem:
    """One entry of a role's navigation."""

    label: str
    href: str


#: The pages each role works in, in the order of their work. One table, read by the layout
#: and by the documentation test (every page is reachable from some role's navigation).
NAV: dict[Role, tuple[NavItem, ...]] = {
    Role.OFFICER: (
        NavItem("Worklist", "/worklist"),
        NavItem("Search", "/search"),
        NavItem("Cases", "/cases"),
        NavItem("Departures", "/departures"),
    ),
    Role.SUPERVISOR: (
        NavItem("Approvals", "/approvals"),
        NavItem("Worklist", "/worklist"),
        NavItem("Search", "/search"),
        NavItem("Cases", "/cases"),
        NavItem("Policies", "/policies"),
        NavItem("Departures", "/departures"),
    ),
    Role.COUNSEL: (
        NavItem("Cases", "/cases"),
        NavItem("Approvals", "/approvals"),
        NavItem("Search", "/search"),
    ),
    Role.ANALYST: (
        NavItem("Policies", "/policies"),
        NavItem("Match review", "/matches"),
        NavItem("Departures", "/departures"),
        NavItem("Overstays", "/departures/overstays"),
        NavItem("Search", "/search"),
    ),
    Role.PRIVACY_OFFICER: (
        NavItem("Sources", "/sources"),
        NavItem("Redress", "/redress"),
        NavItem("Search", "/search"),
    ),
    Role.AUDITOR: (
        NavItem("Audit", "/audit"),
        NavItem("Oversight", "/oversight"),
        NavItem("Alerts", "/oversight/alerts"),
    ),
    Role.ADMINISTRATOR: (NavItem("Accounts", "/admin/accounts"),),
    Role.SYSTEM: (),
}


def purpose_label(purpose: str | Purpose | None) -> str:
    """A purpose's description, for the banner and the purpose picker."""
    if not purpose:
        return ""
    return PURPOSE_DESCRIPTIONS.get(Purpose(purpose), str(purpose))


def _when(value: Any) -> str:
    """A date or time as the pages print it (UTC, minutes)."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and len(value) >= 16 and value[10:11] == "T":
        return value[:10] + " " + value[11:16] + " UTC"
    return "" if value is None else str(value)


def _label(value: Any) -> str:
    """``some_state_name`` → ``some state name`` (states, steps, reasons)."""
    return str(value or "").replace("_", " ")


templates.env.filters["when"] = _when
templates.env.filters["label"] = _label
templates.env.globals["version"] = __version__


def page(
    request: Request,
    template: str,
    ctx: AccessContext | None = None,
    *,
    status: int = 200,
    title: str = "",
    **data: Any,
) -> HTMLResponse:
    """Render ``template`` with the layout's context: who, under which purpose, their nav."""
    web = getattr(request.state, "web", None)
    actor = ctx.actor if ctx else None
    current = request.url.path
    nav = NAV.get(actor.role, ()) if actor else ()
    here = [i.href for i in nav if current == i.href or current.startswith(i.href + "/")]
    context = {
        "active_nav": max(here, key=len, default=None),
        "title": title,
        "actor": actor,
        "ctx": ctx,
        "web": web,
        "csrf": web.csrf_token if web is not None else "",
        "nav": nav,
        "current": current,
        "purpose_text": purpose_label(ctx.purpose) if ctx else "",
        "role_spec": ROLES[actor.role] if actor else None,
        "partial": request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-Boosted") != "true",
        **data,
    }
    return templates.TemplateResponse(request, template, context, status_code=status)
