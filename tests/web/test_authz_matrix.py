"""The authorization matrix: every route × role × purpose is allowed or refused as declared.

Routes are read from the application itself, so a new route is covered the day it lands: each
must declare its access with ``access(...)`` (or be on the short public list below). For every
role, the test calls every route under each purpose the role may work under and under one it
may not, with an API token of a demo user of that role, and checks the answer against the
rule computed independently from the roles table: refused (HTTP 403 naming the rule) exactly
when the role is not admitted, the purpose is not the role's, or the route does not take the
purpose. Unsafe requests send a body no route accepts, so an admitted call stops at validation
and changes nothing.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from immigrationos.accounts import sessions
from immigrationos.accounts.models import User
from immigrationos.accounts.roles import ROLES, Role
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle.models import EnforcementCase
from immigrationos.persons.models import Person
from immigrationos.runtime import Runtime
from immigrationos.store.engine import transaction

#: Routes anyone may call: sign-in, health, the API's own description, scraping metrics.
PUBLIC = {
    ("GET", "/api/health"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
    ("GET", "/metrics"),
    ("GET", "/api/departures/schema"),
    # redress: a person's representative has no account; filings and status checks are
    # throttled per client, and the status needs the reference and its one-time code
    ("POST", "/api/redress"),
    ("GET", "/api/redress/status"),
    ("GET", "/api/redress/status/letter"),
    ("GET", "/redress/new"),
    ("POST", "/redress/new"),
    ("GET", "/redress/status"),
    ("POST", "/redress/status"),
    ("POST", "/redress/status/letter"),
}
ROUTE_RULES = ("may not use this route", "does not permit this route", "may not work under")
USERS = {
    Role.OFFICER: "officer.miami",
    Role.SUPERVISOR: "supervisor.miami",
    Role.COUNSEL: "counsel",
    Role.ANALYST: "analyst",
    Role.PRIVACY_OFFICER: "privacy",
    Role.AUDITOR: "auditor",
    Role.ADMINISTRATOR: "admin",
}


def _guard(route: APIRoute) -> Any:
    """The route's ``access()`` dependency, found anywhere in its dependency tree."""
    pending = list(route.dependant.dependencies)
    while pending:
        dependant = pending.pop()
        if hasattr(dependant.call, "immos_roles"):
            return dependant.call
        pending.extend(dependant.dependencies)
    return None


def _flatten(routes: list[Any]) -> list[tuple[str, APIRoute]]:
    """(full path, route) of every API route, through FastAPI's included-router wrappers."""
    found: list[tuple[str, APIRoute]] = []
    for item in routes:
        if isinstance(item, APIRoute):
            found.append((item.path, item))
        elif hasattr(item, "effective_candidates"):  # an included router (FastAPI ≥ 0.130)
            for candidate in item.effective_candidates():
                if hasattr(candidate, "effective_candidates"):
                    found.extend(_flatten([candidate]))
                elif isinstance(candidate.original_route, APIRoute):
                    found.append((candidate.path, candidate.original_route))
    return found


def _routes(app: Any) -> list[tuple[str, str, Any]]:
    return [
        (method, path, _guard(route))
        for path, route in _flatten(app.routes)
        for method in sorted(route.methods - {"HEAD", "OPTIONS"})
    ]


def _expected(guard: Any, role: Role, purpose: Purpose) -> bool:
    if purpose not in ROLES[role].purposes:
        return False
    if guard.immos_roles and role not in guard.immos_roles:
        return False
    return not guard.immos_purposes or purpose in guard.immos_purposes


def _url(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "no-such-id", path)


@pytest.fixture(scope="module")
def tokens(web_runtime: Runtime) -> dict[Role, str]:
    made = {}
    with transaction(web_runtime.sessions) as session:
        for role, username in USERS.items():
            user = session.scalar(select(User).where(User.username == username))
            assert user is not None
            made[role], _ = sessions.create_token(session, user, "authorization matrix", 1)
    return made


def test_every_route_declares_its_access(web_app: Any) -> None:
    unguarded = [
        (method, path)
        for method, path, guard in _routes(web_app)
        if guard is None and (method, path) not in PUBLIC
    ]
    assert unguarded == [], "routes without an access(...) dependency"


def _first(runtime: Runtime, stmt: Any, model: Any) -> str:
    """The first id ``stmt`` selects, read as the system (the gateway audits it)."""
    with unit_of_work(runtime.sessions, system_context(Purpose.CASE_PROCESSING, "test")) as gw:
        rows = gw.rows(stmt, model, params={"test": "authorization matrix"})
    assert rows, "the demo world has no such row"
    return str(rows[0][0])


def _purposes_to_try(role: Role) -> list[Purpose]:
    own = sorted(ROLES[role].purposes)
    other = next(p for p in Purpose if p not in ROLES[role].purposes)
    return [*own, other]


@pytest.mark.parametrize("role", list(USERS), ids=lambda r: r.value)
def test_matrix(web_app: Any, tokens: dict[Role, str], role: Role) -> None:
    client = TestClient(web_app, raise_server_exceptions=False)
    auth = {"Authorization": f"Bearer {tokens[role]}"}
    wrong = []
    checked = 0
    for method, path, guard in _routes(web_app):
        if guard is None:
            continue
        for purpose in _purposes_to_try(role):
            headers = {**auth, "X-Immos-Purpose": purpose.value, "Accept": "application/json"}
            kwargs: dict[str, Any] = {"headers": headers, "follow_redirects": False}
            if method == "GET":
                kwargs["params"] = {"once": "1"}  # a live stream sends one event and ends
            else:
                kwargs["json"] = ["no route accepts this body"]
            answer = client.request(method, _url(path), **kwargs)
            detail = answer.text
            route_refused = answer.status_code == 403 and any(r in detail for r in ROUTE_RULES)
            allowed = _expected(guard, role, purpose)
            checked += 1
            if answer.status_code in (401, 500) or route_refused == allowed:
                wrong.append((method, path, purpose.value, answer.status_code, detail[:120]))
    assert checked > 100
    assert wrong == [], f"{len(wrong)} of {checked} answers differ from the declared access"


def test_an_officer_cannot_read_a_case_of_another_office(
    web_app: Any, web_runtime: Runtime, tokens: dict[Role, str]
) -> None:
    stmt = select(EnforcementCase.id).where(EnforcementCase.office == "Houston").limit(1)
    houston = _first(web_runtime, stmt, EnforcementCase)
    client = TestClient(web_app)
    headers = {
        "Authorization": f"Bearer {tokens[Role.OFFICER]}",
        "X-Immos-Purpose": "case-processing",
    }
    answer = client.get(f"/api/cases/{houston}", headers=headers)
    assert answer.status_code == 403 and "belongs to the Houston office" in answer.json()["detail"]
    listed = client.get("/api/cases", headers=headers, params={"office": "Houston"})
    assert listed.status_code == 200 and {c["office"] for c in listed.json()} <= {"Miami"}


def test_an_administrator_cannot_read_a_person(
    web_app: Any, web_runtime: Runtime, tokens: dict[Role, str]
) -> None:
    person = _first(web_runtime, select(Person.id).limit(1), Person)
    client = TestClient(web_app)
    headers = {"Authorization": f"Bearer {tokens[Role.ADMINISTRATOR]}"}
    for path in (f"/api/persons/{person}", f"/api/persons/{person}/resolution"):
        answer = client.get(path, headers=headers)
        assert answer.status_code == 403, (path, answer.text)
