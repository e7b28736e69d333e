"""Signing in, sessions, CSRF, throttling, API tokens, purpose and security headers."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.web.conftest import PASSWORDS

from immigrationos.accounts.models import WebSession
from immigrationos.accounts.roles import Role
from immigrationos.accounts.service import create_user
from immigrationos.api.app import create_app
from immigrationos.audit.models import AuditEntry
from immigrationos.core.clock import utcnow
from immigrationos.runtime import Runtime
from immigrationos.store.engine import transaction


def _entries(runtime: Runtime, action: str, **where: Any) -> list[AuditEntry]:
    with transaction(runtime.sessions) as session:
        stmt = select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
        for name, value in where.items():
            stmt = stmt.where(getattr(AuditEntry, name) == value)
        entries = list(session.scalars(stmt))
        session.expunge_all()
        return entries


def _user(runtime: Runtime, username: str, role: Role = Role.OFFICER) -> str:
    password = "a-long-test-password"
    with transaction(runtime.sessions) as session:
        create_user(session, username, role, password, office="Miami")
    return password


def test_pages_send_strangers_to_sign_in_and_the_api_answers_401(web_app: Any) -> None:
    http = TestClient(web_app)
    page = http.get("/cases?state=LEAD", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/cases?state=LEAD"
    api = http.get("/api/cases")
    assert api.status_code == 401 and api.json()["detail"] == "sign in required"


def test_sign_in_sets_a_hardened_cookie_and_goes_back(web_app: Any) -> None:
    http = TestClient(web_app, base_url="https://testserver")
    done = http.post(
        "/login",
        data={"username": "analyst", "password": PASSWORDS["analyst"], "next": "/policies"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/policies"
    cookie = done.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie
    plain = TestClient(web_app).post(
        "/login",
        data={"username": "analyst", "password": PASSWORDS["analyst"]},
        follow_redirects=False,
    )
    assert "secure" not in plain.headers["set-cookie"].lower()  # no TLS, no Secure flag


def test_next_never_leaves_the_site(web_app: Any) -> None:
    done = TestClient(web_app).post(
        "/login",
        data={"username": "analyst", "password": PASSWORDS["analyst"], "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert done.headers["location"] == "/"


def test_wrong_passwords_are_audited_and_lock_the_account(
    web_app: Any, web_runtime: Runtime
) -> None:
    _user(web_runtime, "web.lockout")
    http = TestClient(web_app)
    for _ in range(5):
        bad = http.post("/login", data={"username": "web.lockout", "password": "wrong-password!"})
        assert bad.status_code == 401 and "unknown user or wrong password" in bad.text
    locked = http.post(
        "/login", data={"username": "web.lockout", "password": "a-long-test-password"}
    )
    assert locked.status_code == 401 and "account locked until" in locked.text
    failures = [
        e
        for e in _entries(web_runtime, "auth.failed")
        if e.details.get("username") == "web.lockout"
    ]
    assert len(failures) == 6


def test_too_many_attempts_from_one_client_are_throttled(web_runtime: Runtime) -> None:
    strict = Runtime(
        web_runtime.settings.model_copy(update={"sign_in_attempts_per_minute": 3}),
        web_runtime.engine,
        web_runtime.sessions,
    )
    http = TestClient(create_app(strict))
    codes = [
        http.post("/login", data={"username": "nobody", "password": "x" * 12}).status_code
        for _ in range(4)
    ]
    assert codes == [401, 401, 401, 429]
    last = http.post("/login", data={"username": "analyst", "password": PASSWORDS["analyst"]})
    assert last.status_code == 429 and int(last.headers["retry-after"]) >= 1
    assert _entries(web_runtime, "auth.throttled")


def test_changes_need_the_session_csrf_token(signed: Any) -> None:
    client = signed("officer.miami")
    missing = client.http.post("/purpose", data={"purpose": "case-processing"})
    wrong = client.http.post("/purpose", data={"purpose": "case-processing", "csrf_token": "x"})
    assert missing.status_code == wrong.status_code == 403
    assert "CSRF" in missing.text
    api = client.http.post("/api/cases", json={})
    assert api.status_code == 403 and "CSRF" in api.json()["detail"]
    header = client.http.post("/api/cases", json={}, headers={"X-CSRF-Token": client.csrf})
    assert header.status_code == 422  # past the CSRF check, the body is validated


def test_the_purpose_is_asked_for_shown_and_recorded(signed: Any, web_runtime: Runtime) -> None:
    client = signed("officer.miami")
    first = client.http.get("/cases", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"].startswith("/purpose?next=/cases")
    refused = client.post("/purpose", {"purpose": "oversight-audit"})
    assert refused.status_code == 400 and "may not work under" in refused.text
    chosen = client.post(
        "/purpose",
        {"purpose": "case-processing", "justification": "weekly review", "case_ref": "C-1"},
    )
    assert (
        'data-testid="purpose">case-processing<' in chosen.text and "weekly review" in chosen.text
    )
    before = _entries(web_runtime, "records.searched", actor_name="officer.miami")
    assert client.http.get("/api/cases").status_code == 200
    after = _entries(web_runtime, "records.searched", actor_name="officer.miami")
    newest = after[-1]
    assert len(after) == len(before) + 1
    assert (newest.purpose, newest.justification) == ("case-processing", "weekly review")
    assert _entries(web_runtime, "auth.purpose_chosen", actor_name="officer.miami")


def test_single_purpose_roles_get_it_at_sign_in_and_admins_read_no_persons(signed: Any) -> None:
    admin = signed("admin")
    home = admin.http.get("/")
    assert home.status_code == 200 and "system-administration" in home.text
    assert admin.http.get("/api/cases").status_code == 403
    page = admin.http.get("/cases")
    assert page.status_code == 403 and "Not permitted" in page.text


def test_idle_sessions_end_and_the_end_is_audited(signed: Any, web_runtime: Runtime) -> None:
    client = signed("counsel", "case-processing")
    assert client.http.get("/").status_code == 200
    token = client.http.cookies.get("immos_session")
    assert token
    with transaction(web_runtime.sessions) as session:
        web = session.get(WebSession, hashlib.sha256(token.encode()).hexdigest())
        assert web is not None
        web.last_seen_at = utcnow() - timedelta(minutes=31)
    again = client.http.get("/", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"].startswith("/login")
    ended = _entries(web_runtime, "auth.signed_out", actor_name="counsel")
    assert ended and ended[-1].details["reason"] == "idle timeout"


def test_signing_out_ends_the_session(signed: Any) -> None:
    client = signed("analyst", "statistics")
    assert client.post("/logout", follow_redirects=False).status_code == 303
    assert client.http.get("/", follow_redirects=False).status_code == 303
    assert client.http.get("/api/me").status_code == 401


def test_api_tokens_act_as_their_user_until_revoked(signed: Any, web_app: Any) -> None:
    client = signed("analyst", "statistics")
    made = client.post("/account/tokens", {"name": "nightly report"})
    token = re.search(r'data-testid="new-token" class="token">([^<]+)<', made.text)
    assert token, made.text
    machine = TestClient(web_app)
    me = machine.get("/api/me", headers={"Authorization": f"Bearer {token.group(1)}"})
    assert me.status_code == 200 and me.json()["username"] == "analyst"
    token_id = re.search(r"/account/tokens/(tok-[^/]+)/revoke", made.text)
    assert token_id
    client.post(f"/account/tokens/{token_id.group(1)}/revoke")
    gone = machine.get("/api/me", headers={"Authorization": f"Bearer {token.group(1)}"})
    assert gone.status_code == 401 and "revoked" in gone.json()["detail"]
    forged = machine.get("/api/me", headers={"Authorization": "Bearer immos_forged"})
    assert forged.status_code == 401


def test_pages_carry_security_headers_and_errors_leak_nothing(signed: Any) -> None:
    client = signed("analyst", "statistics")
    page = client.http.get("/")
    headers = page.headers
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"
    missing = client.http.get("/no/such/page")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
    assert "Traceback" not in missing.text and "Not found" in missing.text
    assert missing.headers["x-frame-options"] == "DENY"
    assert "strict-transport-security" not in headers
    static = client.http.get("/static/htmx-2.0.11.min.js")
    assert "cache-control" not in static.headers and static.headers["x-frame-options"] == "DENY"


def test_responses_behind_tls_ask_for_tls_from_then_on(web_app: Any) -> None:
    answer = TestClient(web_app, base_url="https://testserver").get("/api/health")
    assert answer.headers["strict-transport-security"] == "max-age=31536000"
    assert answer.headers["cache-control"] == "no-store"


def test_vendored_assets_and_api_docs_are_served_locally(web_app: Any) -> None:
    http = TestClient(web_app)
    assert http.get("/static/htmx-2.0.11.min.js").status_code == 200
    docs = http.get("/docs")
    assert docs.status_code == 200 and "/static/swagger-ui/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    assert http.get("/static/swagger-ui/swagger-ui-bundle.js").status_code == 200
