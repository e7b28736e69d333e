"""Governance pages: sources and quarantine, the audit explorer, oversight, accounts.

Page tests go through the sign-in and purpose pages with a TestClient; the browser journeys
drive chromium and check the audit entry each produced. The demo world is shared by the
session, so each test picks its own objects and new usernames.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

import pytest
from sqlalchemy import select

from immigrationos.accounts.service import DEMO_ACCOUNTS
from immigrationos.audit.checkpoint import check_signature
from immigrationos.audit.models import AuditEntry
from immigrationos.runtime import Runtime
from immigrationos.store.engine import transaction

PASSWORD = "governance-test-pass"


def _head(runtime: Runtime) -> int:
    with transaction(runtime.sessions) as session:
        return session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1)) or 0


def _entries_since(runtime: Runtime, seq: int, action: str) -> list[AuditEntry]:
    with transaction(runtime.sessions) as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.seq > seq, AuditEntry.action == action)
        ).all()
        session.expunge_all()
        return list(rows)


def _user_id(admin: Any, username: str) -> str:
    users = admin.http.get("/api/users").json()
    return next(u["id"] for u in users if u["username"] == username)


# --- sources ------------------------------------------------------------------------------


def test_privacy_officer_sees_agreements_batches_and_quarantine(signed: Any) -> None:
    privacy = signed("privacy", "data-integration")
    listing = privacy.http.get("/sources")
    assert listing.status_code == 200, listing.text
    assert "Legal authority" in listing.text and "Per-request prerequisites" in listing.text
    assert "per request" in listing.text  # the tax source's prerequisite is shown
    assert 'href="/sources/tax_addresses"' in listing.text

    source = privacy.http.get("/sources/visas")
    assert source.status_code == 200
    assert "Agreement versions" in source.text and "in force" in source.text
    batches = privacy.http.get("/api/batches", params={"source": "visas"}).json()
    first = batches[0]
    assert first["id"] in source.text
    assert f'data-label="Read" class="num">{first["read_count"]}<' in source.text

    api_rows = privacy.http.get("/api/quarantine", params={"status": ""}).json()
    assert api_rows, "the demo world quarantines some rows"
    rows = privacy.http.get("/sources/quarantine", params={"status": ""})
    assert rows.status_code == 200
    for row in api_rows:
        assert row["batch_id"] in rows.text and f"<strong>{row['reason']}</strong>" in rows.text
    one = api_rows[0]["source_id"]
    only = privacy.http.get("/sources/quarantine", params={"source": one, "status": ""})
    assert "Re-run open rows of" in only.text
    assert privacy.http.get("/sources/nonesuch").status_code == 404
    versions = privacy.http.get("/api/sources/visas/agreements").json()
    assert versions[0]["version"] >= 1 and versions[0]["legal_authority"]


def test_sources_need_the_data_integration_purpose(signed: Any) -> None:
    assert signed("privacy", "redress").http.get("/sources").status_code == 403
    assert signed("auditor", "oversight-audit").http.get("/sources").status_code == 403


# --- audit --------------------------------------------------------------------------------


def test_auditor_searches_entries_with_filters_and_pages(signed: Any) -> None:
    auditor = signed("auditor", "oversight-audit")
    api = auditor.http.get("/api/audit/search", params={"action": "user.created"}).json()
    assert api["total"] >= len(DEMO_ACCOUNTS)
    assert all(e["action"] == "user.created" for e in api["entries"])
    found = auditor.http.get("/audit", params={"action": "user.created"})
    assert found.status_code == 200
    assert f'data-testid="audit-total">{api["total"]} matching' in found.text

    refused = auditor.http.get("/api/audit/search", params={"outcome": "refused", "limit": 5})
    assert all(e["outcome"] == "refused" for e in refused.json()["entries"])
    mine = auditor.http.get(
        "/api/audit/search", params={"actor": "auditor", "action": "auth.purpose_chosen"}
    ).json()
    assert mine["total"] >= 1 and all(e["actor_name"] == "auditor" for e in mine["entries"])

    second = auditor.http.get("/audit", params={"offset": 50})
    assert 'rel="prev"' in second.text
    partial = auditor.http.get(
        "/audit", params={"outcome": "refused"}, headers={"HX-Request": "true"}
    )
    assert partial.text.lstrip().startswith('<section id="audit-results"')


def test_auditor_verifies_the_chain_and_downloads_a_checkpoint(
    signed: Any, web_runtime: Runtime
) -> None:
    auditor = signed("auditor", "oversight-audit")
    before = _head(web_runtime)
    verified = auditor.post("/audit/verify", follow_redirects=False)
    assert verified.status_code == 303
    assert verified.headers["location"].startswith("/audit?verified=intact")
    shown = auditor.http.get(verified.headers["location"])
    assert "the chain is intact" in shown.text
    assert re.search(r'data-testid="chain-status">Last verified .* by auditor', shown.text)
    (entry,) = _entries_since(web_runtime, before, "audit.verified")
    assert entry.actor_name == "auditor" and entry.details["ok"] is True

    download = auditor.post("/audit/checkpoint")
    assert download.status_code == 200
    assert download.headers["content-disposition"].startswith("attachment;")
    document = json.loads(download.content)
    assert document["format"] == "immos-audit-checkpoint/1" and len(document["signature"]) == 128
    check_signature(document)  # raises when the signature does not verify
    assert _entries_since(web_runtime, before, "audit.checkpoint")


def test_audit_pages_refuse_other_roles(signed: Any) -> None:
    assert signed("admin").http.get("/audit").status_code == 403
    privacy = signed("privacy", "oversight-audit")
    assert privacy.post("/audit/verify", follow_redirects=False).status_code == 403


# --- oversight ----------------------------------------------------------------------------


def test_oversight_dashboard_shows_the_report_and_names_no_one(
    signed: Any, web_runtime: Runtime
) -> None:
    auditor = signed("auditor", "statistics")
    before = _head(web_runtime)
    board = auditor.http.get("/oversight")
    assert board.status_code == 200
    assert "Arrives with" not in board.text  # every section is populated or says why not
    assert '<svg id="chart-purpose" role="img"' in board.text
    assert '<svg id="chart-enforcement-tier" role="img"' in board.text
    assert _entries_since(web_runtime, before, "report.oversight_generated")

    report = auditor.http.get("/api/oversight/report").json()
    assert report["audit_entries"] > 0
    assert f'data-testid="enforcement-total">{report["enforcement"]["total"]}<' in board.text
    purposes = {row["purpose"] for row in report["access_by_purpose_role"]}
    assert "case-processing" in purposes
    assert report["action_decisions"], "the demo world decided requested actions"
    assert report["enforcement"]["total"] > 0 and report["departures"]["verified"] > 0
    text = json.dumps(report) + board.text
    named = [a.username for a in DEMO_ACCOUNTS if "." in a.username]  # others are role names
    assert named and not any(username in text for username in named)  # no one is named
    download = auditor.http.get("/api/oversight/report.html")
    assert download.status_code == 200 and "<h1>Oversight report</h1>" in download.text
    assert signed("admin").http.get("/api/oversight/report").status_code == 403
    assert signed("officer.miami").http.get("/oversight").status_code == 403


# --- accounts -----------------------------------------------------------------------------


def test_admin_creates_deactivates_and_reactivates_an_account(
    signed: Any, web_app: Any, web_runtime: Runtime
) -> None:
    from tests.web.conftest import PASSWORDS, sign_in

    admin = signed("admin")
    username = f"officer.gov{secrets.token_hex(3)}"
    before = _head(web_runtime)
    created = admin.post(
        "/admin/accounts",
        {"username": username, "role": "officer", "office": "Miami", "password": PASSWORD},
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    listing = admin.http.get(created.headers["location"])
    assert f"Account created: {username}." in listing.text
    assert f'data-testid="user-{username}"' in listing.text

    PASSWORDS[username] = PASSWORD
    try:
        newcomer = sign_in(web_app, username, "case-processing")
        assert newcomer.http.get("/").status_code == 200
        user_id = _user_id(admin, username)
        off = admin.post(f"/admin/accounts/{user_id}/deactivation", follow_redirects=False)
        assert off.status_code == 303
        again = newcomer.http.get("/", follow_redirects=False)
        assert again.status_code == 303 and again.headers["location"].startswith("/login")
        with pytest.raises(AssertionError):
            sign_in(web_app, username)
        api_user = admin.http.post(f"/api/users/{user_id}/reactivation", headers=_csrf(admin))
        assert api_user.status_code == 200 and api_user.json()["active"] is True
        assert sign_in(web_app, username).http.get("/account").status_code == 200
    finally:
        PASSWORDS.pop(username, None)

    (made,) = _entries_since(web_runtime, before, "user.created")
    assert made.actor_name == "admin" and made.details["username"] == username
    changes = _entries_since(web_runtime, before, "user.changed")
    assert [c.details["fields"] for c in changes] == [["active"], ["active"]]
    assert all(c.object_ids == [user_id] and c.actor_name == "admin" for c in changes)


def _csrf(client: Any) -> dict[str, str]:
    return {"X-CSRF-Token": client.csrf}


def test_account_form_explains_problems_and_admin_cannot_deactivate_self(signed: Any) -> None:
    admin = signed("admin")
    short = admin.post(
        "/admin/accounts", {"username": "tooshort.pw", "role": "analyst", "password": "short"}
    )
    assert short.status_code == 422 and "at least 10 characters" in short.text
    taken = admin.post(
        "/admin/accounts", {"username": "auditor", "role": "analyst", "password": PASSWORD}
    )
    assert taken.status_code == 422 and "is taken" in taken.text
    mine = _user_id(admin, "admin")
    own = admin.post(f"/admin/accounts/{mine}/deactivation")
    assert own.status_code == 422 and "your own account" in own.text


def test_admin_unlocks_a_locked_account(signed: Any, web_app: Any) -> None:
    from tests.web.conftest import Client

    admin = signed("admin")
    username = f"analyst.lock{secrets.token_hex(3)}"
    made = admin.http.post(
        "/api/users",
        json={"username": username, "role": "analyst", "password": PASSWORD},
        headers=_csrf(admin),
    )
    assert made.status_code == 201, made.text
    from fastapi.testclient import TestClient

    stranger = Client(TestClient(web_app, raise_server_exceptions=False), "")
    for _ in range(5):
        stranger.http.post("/login", data={"username": username, "password": "wrong-password"})
    user_id = made.json()["id"]
    assert next(u for u in admin.http.get("/api/users").json() if u["id"] == user_id)["locked"]
    assert "Unlock " + username in admin.http.get("/admin/accounts").text
    unlocked = admin.post(f"/admin/accounts/{user_id}/unlock", follow_redirects=False)
    assert unlocked.status_code == 303
    assert not next(u for u in admin.http.get("/api/users").json() if u["id"] == user_id)["locked"]
    login = stranger.http.post("/login", data={"username": username, "password": PASSWORD})
    assert login.status_code == 200


def test_admin_is_refused_personal_data(signed: Any, web_app: Any) -> None:
    admin = signed("admin")
    assert admin.http.get("/api/records", params={"source": "arrivals"}).status_code == 403
    assert admin.http.get("/api/persons/anyone/resolution").status_code == 403
    assert admin.http.get("/api/cases").status_code == 403
    paths = {getattr(route, "path", "") for route in web_app.routes}
    if "/search" in paths:  # the search page (another area's) refuses the role too
        assert admin.http.get("/search").status_code == 403
    for path in ("/api/persons", "/api/persons/{person_id}"):
        if path in paths:
            assert admin.http.get(path.replace("{person_id}", "p-1")).status_code == 403
    assert signed("auditor", "oversight-audit").http.get("/admin/accounts").status_code == 403


# --- browser journeys ---------------------------------------------------------------------


def test_privacy_officer_opens_a_source_agreement(browser: Any, web_runtime: Runtime) -> None:
    before = _head(web_runtime)
    tab = browser.sign_in("privacy", "data-integration", reason="agreement review")
    tab.goto("/sources")
    tab.get_by_role(
        "link", name="Agreement versions and ingest batches of", exact=False
    ).first.click()
    tab.get_by_role("heading", name="Agreement versions").wait_for()
    assert tab.locator("text=in force").count() >= 1
    browser.shot(tab, "privacy-sources")
    tab.get_by_role("link", name="Open quarantined rows of", exact=False).click()
    tab.get_by_role("heading", name="Quarantine").wait_for()
    searches = _entries_since(web_runtime, before, "records.searched")
    assert any(
        e.actor_name == "privacy"
        and e.purpose == "data-integration"
        and e.object_type == "quarantined_rows"
        for e in searches
    )
    tab.context.close()


def test_auditor_filters_the_log_and_verifies_the_chain(browser: Any, web_runtime: Runtime) -> None:
    before = _head(web_runtime)
    tab = browser.sign_in("auditor", "oversight-audit", reason="quarterly inspection")
    tab.goto("/audit")
    tab.get_by_label("Action").select_option("auth.purpose_chosen")
    tab.get_by_label("Actor (username)").fill("auditor")
    tab.get_by_role("button", name="Search").click()
    tab.wait_for_url(re.compile(r"/audit\?.*action=auth\.purpose_chosen"))
    rows = tab.locator("#audit-results tbody tr")
    rows.first.wait_for()
    assert "auth.purpose_chosen" in rows.first.inner_text()
    tab.get_by_role("button", name="Verify the chain now").click()
    tab.get_by_text("the chain is intact").wait_for()
    browser.shot(tab, "auditor-audit")
    (entry,) = _entries_since(web_runtime, before, "audit.verified")
    assert entry.actor_name == "auditor" and entry.purpose == "oversight-audit"
    tab.context.close()


def test_admin_creates_an_account(browser: Any, web_runtime: Runtime) -> None:
    before = _head(web_runtime)
    username = f"supervisor.ui{secrets.token_hex(3)}"
    tab = browser.sign_in("admin")
    tab.goto("/admin/accounts")
    tab.get_by_label("Username").fill(username)
    tab.get_by_label("Role").select_option("supervisor")
    tab.get_by_label("Office (optional)").fill("Houston")
    tab.get_by_label("Initial password").fill(PASSWORD)
    tab.get_by_role("button", name="Create account").click()
    tab.get_by_text(f"Account created: {username}.").wait_for()
    assert tab.locator(f'[data-testid="user-{username}"]').count() == 1
    browser.shot(tab, "admin-accounts")
    (made,) = _entries_since(web_runtime, before, "user.created")
    assert made.actor_name == "admin" and made.details == {
        "username": username,
        "role": "supervisor",
    }
    tab.context.close()
