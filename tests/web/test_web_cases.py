"""The worklist, case and approvals pages: the lifecycle's rules as a browser meets them.

Each test opens its own case (for an actionable lead of the shared demo world), so it depends
neither on the state other tests leave nor on their order.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from immigrationos.audit.models import AuditEntry
from immigrationos.runtime import Runtime

CASE = "case-processing"
PRIORITY = "enforcement-prioritization"


def _rows(html: str) -> list[dict[str, str]]:
    """The worklist's rows, by their data attributes."""
    found = re.findall(
        r'<tr data-person="([^"]+)" data-tier="([^"]*)" data-office="([^"]*)" '
        r'data-actionable="(yes|no)">',
        html,
    )
    return [dict(zip(("person", "tier", "office", "actionable"), r, strict=True)) for r in found]


def _flash(response: Any) -> dict[str, str]:
    """The flash a form's redirect carries (``done`` or ``error``)."""
    assert response.status_code == 303, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    return {k: v[0] for k, v in query.items()}


@pytest.fixture
def lead(signed: Any) -> str:
    """A person who is an actionable lead (no guard blocks an encounter)."""
    client = signed("supervisor.miami", PRIORITY)
    rows = _rows(client.http.get("/worklist?office=&actionable=yes&size=100").text)
    assert rows, "the demo world has no actionable lead"
    return rows[0]["person"]


def _open_case(client: Any, person: str) -> str:
    form = {"person_id": person, "reason": "lead from the worklist"}
    done = client.post("/cases", form, follow_redirects=False)
    assert "done" in _flash(done), done.headers["location"]
    return urlsplit(done.headers["location"]).path.rsplit("/", 1)[-1]


def _encountered(client: Any, person: str) -> str:
    """A new case of ``person`` in ENCOUNTERED, opened and recorded through the pages."""
    case_id = _open_case(client, person)
    step = {
        "action": "record_encounter",
        "p_encounter_date": date.today().isoformat(),
        "p_office": "Miami",
        "p_narrative": "Met at the office for an interview.",
    }
    flash = _flash(client.post(f"/cases/{case_id}/steps", step, follow_redirects=False))
    assert "Encountered" in flash.get("done", ""), flash
    return case_id


def _request_arrest(client: Any, case_id: str) -> str:
    form = {
        "action": "arrest",
        "p_authority": "warrant",
        "p_probable_cause": "Records indicate the person is removable.",
        "justification": "Actionable lead; the encounter is recorded.",
    }
    flash = _flash(client.post(f"/cases/{case_id}/requests", form, follow_redirects=False))
    found = re.search(r"\((req-[0-9a-f]+)\)", flash.get("done", ""))
    assert found, flash
    return found.group(1)


def _audit(runtime: Runtime, action: str, object_id: str) -> list[AuditEntry]:
    with runtime.sessions() as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
        ).all()
        return [r for r in rows if object_id in (r.object_ids or [])]


# -- worklist ----------------------------------------------------------------------------------


def test_worklist_lists_actionable_leads_first_and_filters(signed: Any) -> None:
    supervisor = signed("supervisor.miami", PRIORITY)
    every = _rows(supervisor.http.get("/worklist?office=&size=100").text)
    flags = [r["actionable"] for r in every]
    assert "yes" in flags and "no" in flags, flags
    assert flags == sorted(flags, key=lambda f: f != "yes"), "actionable leads come first"
    blocked = supervisor.http.get("/worklist?office=&actionable=no&size=100").text
    assert {r["actionable"] for r in _rows(blocked)} == {"no"}
    for row in blocked.split("<tr data-person=")[1:]:  # each blocked lead says why
        assert re.search(r"<li><strong>[^<]+</strong>: \w", row), row
    tier = every[0]["tier"]
    assert {
        r["tier"] for r in _rows(supervisor.http.get(f"/worklist?office=&tier={tier}").text)
    } == {tier}
    assert {r["office"] for r in _rows(supervisor.http.get("/worklist").text)} <= {"Miami"}
    officer = signed("officer.miami", PRIORITY)
    mine = officer.http.get("/worklist").text
    assert {r["office"] for r in _rows(mine)} <= {"Miami"}
    assert 'name="office"' not in mine  # an officer's worklist is their office's


def test_explanation_is_a_panel_or_a_page(signed: Any, lead: str) -> None:
    officer = signed("officer.miami", PRIORITY)
    panel = officer.http.get(f"/worklist/persons/{lead}", headers={"HX-Request": "true"})
    assert panel.status_code == 200
    assert "<html" not in panel.text and "Could action be taken now?" in panel.text
    full = officer.http.get(f"/worklist/persons/{lead}")
    assert "<h1>Why" in full.text and "<html" in full.text
    refused = signed("officer.miami", CASE).http.get(f"/worklist/persons/{lead}")
    assert refused.status_code == 403  # prioritization's purpose, as for the API


# -- cases -------------------------------------------------------------------------------------


def test_officer_of_another_office_is_refused_a_case(signed: Any, lead: str) -> None:
    miami = signed("officer.miami", CASE)
    case_id = _open_case(miami, lead)
    assert miami.http.get(f"/cases/{case_id}").status_code == 200
    houston = signed("officer.houston", CASE)
    page = houston.http.get(f"/cases/{case_id}")
    assert page.status_code == 403 and "Miami office" in page.text
    assert houston.http.get(f"/api/cases/{case_id}").status_code == 403
    assert case_id not in houston.http.get("/cases?limit=200").text


def test_case_page_shows_what_can_happen_next_and_why_not(signed: Any, lead: str) -> None:
    officer = signed("officer.miami", CASE)
    case_id = _encountered(officer, lead)
    page = officer.http.get(f"/cases/{case_id}").text
    assert 'data-testid="case-state">Encountered<' in page
    assert 'data-testid="option-arrest"' in page  # requestable, with its fields
    assert 'name="p_probable_cause"' in page and 'name="justification"' in page
    blocked = page.split('data-testid="blocked"', 1)[1]
    assert 'data-transition="lodge_detainer"' in blocked
    assert "no signed arrest warrant" in blocked  # the guard's own words
    assert "Record an encounter" in page.split('data-testid="timeline"', 1)[1]


def test_a_blocked_step_comes_back_as_a_flash_with_the_rule(signed: Any, lead: str) -> None:
    officer = signed("officer.miami", CASE)
    case_id = _encountered(officer, lead)
    form = {
        "action": "lodge_detainer",
        "p_probable_cause_basis": "final-order-of-removal",
        "p_facility": "County jail",
        "p_release_at": "2030-01-01T10:00",
        "justification": "Detainer for the scheduled release.",
    }
    flash = _flash(officer.post(f"/cases/{case_id}/requests", form, follow_redirects=False))
    assert "signed_warrant" in flash["error"] and "no signed arrest warrant" in flash["error"]
    shown = officer.http.get(f"/cases/{case_id}", params={"error": flash["error"]}).text
    assert 'class="flash error"' in shown


def test_a_form_without_its_csrf_token_is_refused(signed: Any, lead: str) -> None:
    officer = signed("officer.miami", CASE)
    case_id = _open_case(officer, lead)
    forged = officer.http.post(
        f"/cases/{case_id}/steps",
        data={"action": "claim_citizenship", "p_basis": "passport", "p_details": "forged"},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    assert 'data-testid="case-state">Lead<' in officer.http.get(f"/cases/{case_id}").text


# -- approvals ---------------------------------------------------------------------------------


def test_request_then_approval_by_a_supervisor_of_the_office(
    signed: Any, lead: str, web_runtime: Runtime
) -> None:
    officer = signed("officer.miami", CASE)
    case_id = _encountered(officer, lead)
    request_id = _request_arrest(officer, case_id)
    houston = signed("supervisor.houston", CASE)
    assert request_id not in houston.http.get("/approvals").text
    refused = _flash(
        houston.post(
            f"/requests/{request_id}/decision",
            {"decision": "approve", "justification": "not my office"},
            follow_redirects=False,
        )
    )
    assert "Miami office" in refused["error"]
    supervisor = signed("supervisor.miami", CASE)
    queue = supervisor.http.get("/approvals").text
    card = queue.split(f'data-request="{request_id}"', 1)[1].split("</article>", 1)[0]
    assert "every guard holds" in card and "not in citizenship review" in card
    done = _flash(
        supervisor.post(
            f"/requests/{request_id}/decision",
            {"decision": "approve", "justification": "Probable cause is documented."},
            follow_redirects=False,
        )
    )
    assert done["done"].startswith(f"Approved {request_id}")
    requests = officer.http.get(f"/api/cases/{case_id}").json()["requests"]
    assert [r["status"] for r in requests if r["id"] == request_id] == ["approved"]
    (entry,) = _audit(web_runtime, "case.action_decided", request_id)
    assert (entry.actor_name, entry.purpose) == ("supervisor.miami", CASE)
    assert entry.details.get("decision") == "approved"
    carried = _flash(
        officer.post(
            f"/requests/{request_id}/execution", {"case_id": case_id}, follow_redirects=False
        )
    )
    assert "Arrested" in carried["done"]


def test_a_supervisor_cannot_approve_their_own_request(
    signed: Any, lead: str, web_runtime: Runtime
) -> None:
    supervisor = signed("supervisor.miami", CASE)
    case_id = _open_case(supervisor, lead)
    form = {
        "action": "close_case",
        "p_reason": "opened-in-error",
        "p_details": "Opened by mistake in a test.",
        "justification": "Close: the case was opened in error.",
    }
    flash = _flash(supervisor.post(f"/cases/{case_id}/requests", form, follow_redirects=False))
    request_id = re.search(r"\((req-[0-9a-f]+)\)", flash["done"]).group(1)  # type: ignore[union-attr]
    queue = supervisor.http.get("/approvals").text
    card = queue.split(f'data-request="{request_id}"', 1)[1].split("</article>", 1)[0]
    assert "your own request" in card and 'value="approve"' not in card
    refused = _flash(
        supervisor.post(
            f"/requests/{request_id}/decision",
            {"decision": "approve", "justification": "approving my own"},
            follow_redirects=False,
        )
    )
    assert "nobody approves their own request" in refused["error"]
    shown = supervisor.http.get("/approvals", params={"error": refused["error"]}).text
    assert "nobody approves their own request" in shown
    assert _audit(web_runtime, "access.refused", request_id)
    assert not _audit(web_runtime, "case.action_decided", request_id)


# -- in a browser ------------------------------------------------------------------------------


def test_officer_and_supervisor_journey(browser: Any, web_runtime: Runtime) -> None:
    tab = browser.sign_in("officer.miami", PRIORITY)
    tab.goto("/worklist")
    row = tab.locator('tr[data-actionable="yes"]').first
    row.get_by_role("link", name=re.compile("^Explain")).click()
    panel = tab.locator('#explanation [data-testid="explanation"]')
    panel.wait_for()
    assert "Could action be taken now?" in panel.inner_text()
    browser.shot(tab, "officer-worklist")

    row.get_by_role("link", name=re.compile("^Open a case")).click()
    tab.locator(f'input[name="purpose"][value="{CASE}"]').check()
    tab.get_by_role("button", name="Work under this purpose").click()
    tab.get_by_label("Why the case is opened").fill("Actionable lead on the worklist.")
    tab.get_by_role("button", name="Open the case").click()
    case_id = tab.url.split("/cases/", 1)[1].split("?", 1)[0]

    encounter = tab.locator('[data-testid="option-record_encounter"]')
    encounter.locator("summary").click()
    encounter.get_by_label("Encounter date").fill(date.today().isoformat())
    encounter.get_by_label("Narrative").fill("Met at the office for an interview.")
    encounter.get_by_role("button", name=re.compile("^Record")).click()
    tab.locator('[data-testid="case-state"]', has_text="Encountered").wait_for()

    arrest = tab.locator('[data-testid="option-arrest"]')
    arrest.locator("summary").click()
    arrest.get_by_label("Authority").select_option("warrant")
    arrest.get_by_label("Probable cause").fill("Records indicate the person is removable.")
    arrest.get_by_label("Justification for the approver").fill("Actionable lead, encountered.")
    arrest.get_by_role("button", name=re.compile("^Request")).click()
    flash = tab.locator(".flash.ok")
    assert "Requested" in flash.inner_text()
    request_id = re.search(r"req-[0-9a-f]+", flash.inner_text()).group(0)  # type: ignore[union-attr]
    browser.shot(tab, "officer-case")

    boss = browser.sign_in("supervisor.miami", CASE)
    boss.goto("/approvals")
    card = boss.locator(f'article[data-request="{request_id}"]')
    assert "every guard holds" in card.inner_text()
    card.get_by_label("Reason for your decision").fill("Probable cause is documented.")
    browser.shot(boss, "supervisor-approvals")
    card.get_by_role("button", name="Approve").click()
    assert f"Approved {request_id}" in boss.locator(".flash.ok").inner_text()

    (asked,) = _audit(web_runtime, "case.action_requested", request_id)
    assert (asked.actor_name, asked.purpose) == ("officer.miami", CASE)
    assert case_id in asked.object_ids
    (decided,) = _audit(web_runtime, "case.action_decided", request_id)
    assert (decided.actor_name, decided.details.get("decision")) == ("supervisor.miami", "approved")
