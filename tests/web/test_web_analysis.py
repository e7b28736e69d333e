"""Analysis pages: policies and the what-if comparison, match review, departures (monitor over
server-sent events, review queue, overstay report), through the pages and a real browser."""

from __future__ import annotations

import re
from typing import Any

import orjson
from sqlalchemy import func, select

from immigrationos.audit.models import AuditEntry
from immigrationos.departures.models import Departure
from immigrationos.persons.models import RecordLink
from immigrationos.runtime import Runtime
from immigrationos.sources.models import SourceRecord

PRIORITY = "enforcement-prioritization"
RESOLUTION = "identity-resolution"
DEPARTURES = "departure-verification"


def _audit(rt: Runtime, action: str, object_id: str) -> list[AuditEntry]:
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(AuditEntry.__table__).where(AuditEntry.__table__.c.action == action)
        ).all()
    return [r for r in rows if object_id in (r.object_ids or [])]


def _open_reviews(client: Any) -> list[str]:
    queue = client.http.get("/matches")
    assert queue.status_code == 200, queue.text
    return re.findall(r'href="/matches/(rev-[0-9a-f]+)"', queue.text)


# -- policies -------------------------------------------------------------------------------


def test_policies_page_lists_versions_with_state_and_runs(signed: Any) -> None:
    client = signed("analyst", PRIORITY)
    got = client.http.get("/policies")
    assert got.status_code == 200, got.text
    assert "dhs-2021-guidelines@1.0.0" in got.text and "in force" in got.text
    assert "prun-" in got.text  # the demo's runs
    assert 'action="/policies/runs"' in got.text  # an analyst may run


def test_policy_page_shows_rules_and_a_person_explains_under_it(signed: Any) -> None:
    client = signed("analyst", PRIORITY)
    got = client.http.get("/policies/dhs-2025-enforcement@1.0.0")
    assert got.status_code == 200, got.text
    assert "Rules" in got.text and "aggravating" in got.text and "Tiers" in got.text
    compare = client.http.get(
        "/policies/compare", params={"a": "dhs-2021-guidelines", "b": "dhs-2025-enforcement"}
    )
    person = re.search(r'/policies/dhs-2025-enforcement@1.0.0/persons/([^"/?]+)"', compare.text)
    assert person, "no changed person linked from the comparison"
    form = client.http.get(
        "/policies/dhs-2025-enforcement@1.0.0/persons", params={"person_id": person.group(1)}
    )
    assert form.status_code == 200 and f"/persons/{person.group(1)}" in str(form.url)
    assert 'data-testid="tier"' in form.text and "Lifecycle guards now" in form.text


def test_compare_page_embeds_the_matrix_and_svg_charts(signed: Any) -> None:
    client = signed("analyst", PRIORITY)
    got = client.http.get(
        "/policies/compare", params={"a": "dhs-2021-guidelines", "b": "dhs-2025-enforcement"}
    )
    assert got.status_code == 200, got.text
    assert got.text.count("<svg") >= 4  # heat map and three bar charts
    assert 'id="heatmap"' in got.text and 'id="matrix"' in got.text
    assert "Persons whose tier changed" in got.text
    bad = client.http.get("/policies/compare", params={"a": "prun-nope", "b": "prun-nope2"})
    assert bad.status_code == 422 and "no run" in bad.text


def test_an_officer_is_refused_policy_registration(signed: Any, web_runtime: Runtime) -> None:
    client = signed("officer.miami", PRIORITY)
    page = client.http.get("/policies")
    assert page.status_code == 200 and 'action="/policies/runs"' not in page.text
    refused = client.post("/policies", {"text": "policy: x"})
    assert refused.status_code == 403
    assert "may not use this route" in refused.text


def test_registering_invalid_yaml_explains_every_problem(signed: Any) -> None:
    client = signed("analyst", PRIORITY)
    got = client.post("/policies", {"text": "policy: broken\nversion: 1.0.0\n"})
    assert got.status_code == 422
    assert "is invalid" in got.text and "policy: broken" in got.text  # text kept for editing


def test_only_a_supervisor_sees_and_uses_the_adoption_form(signed: Any) -> None:
    """Adopting in the shared demo world would change the policy in force for every other
    test, so only the refusal and the form are checked here."""
    url = "/policies/dhs-2014-priorities@1.0.0"
    supervisor = signed("supervisor.houston", PRIORITY)
    assert "Adopt this version" in supervisor.http.get(url).text
    analyst = signed("analyst", PRIORITY)
    assert "Adopt this version" not in analyst.http.get(url).text
    refused = analyst.post(f"{url}/adopt", {"note": "Analysts do not adopt."})
    assert refused.status_code == 403


# -- match review ---------------------------------------------------------------------------


def test_a_match_decision_is_audited_and_leaves_the_queue(
    signed: Any, web_runtime: Runtime
) -> None:
    client = signed("analyst", RESOLUTION)
    queue = _open_reviews(client)
    assert queue, "the demo world has no open match review"
    review_id = queue[-1]
    shown = client.http.get(f"/matches/{review_id}")
    assert shown.status_code == 200
    assert 'data-testid="contributions"' in shown.text and "for or against" in shown.text.lower()
    short = client.post(f"/matches/{review_id}/decision", {"decision": "match", "reason": "x"})
    assert short.status_code == 200 and "reason" in short.text and review_id in str(short.url)
    done = client.post(
        f"/matches/{review_id}/decision",
        {"decision": "non-match", "reason": "Different birth dates and given names."},
    )
    assert done.status_code == 200 and "Recorded non-match" in done.text
    assert review_id not in _open_reviews(client)
    [entry] = _audit(web_runtime, "resolution.review_decided", review_id)
    assert entry.actor_name == "analyst" and entry.purpose == RESOLUTION


def test_match_review_needs_the_identity_resolution_purpose(signed: Any) -> None:
    client = signed("analyst", PRIORITY)
    assert client.http.get("/matches").status_code == 403


# -- departures -----------------------------------------------------------------------------


def test_the_monitor_streams_server_sent_events(signed: Any) -> None:
    client = signed("officer.miami", DEPARTURES)
    page = client.http.get("/departures")
    assert page.status_code == 200 and 'data-sse-url="/departures/stream"' in page.text
    got = client.http.get("/departures/stream", params={"once": 1})
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("text/event-stream")
    assert got.text.startswith("event: monitor\ndata: ")
    assert "Verified today" in got.text and got.text.endswith("\n\n")
    assert got.text.count("event: monitor") == 1


def _review_event(rt: Runtime, client: Any) -> str:
    """Post a manifest event carrying a linked person's passport under another name and
    birth date: the matcher leaves it for review."""
    with rt.engine.connect() as conn:
        rec, link = SourceRecord.__table__, RecordLink.__table__
        payload = conn.execute(
            select(rec.c.payload)
            .join(link, link.c.source_record_id == rec.c.id)
            .where(rec.c.source_id == "arrivals", link.c.unlinked_at.is_(None))
            .order_by(rec.c.id)
            .limit(1)
        ).scalar_one()
        n = conn.scalar(select(func.count()).select_from(Departure.__table__))
    event = {"event_id": f"WEBREVIEW{n}", "channel": "manifest",
             "occurred_at": "2026-09-20T10:00:00Z", "family_name": "Quispe",
             "given_name": "Wilfredo", "birth_date": "1955-05-05",
             "document_no": payload["passport_no"],
             "document_country": payload["passport_country"], "carrier": "AA",
             "flight": "AA1", "port": "MIA"}  # fmt: skip
    sent = client.http.post(
        "/api/departures/events",
        content=orjson.dumps(event),
        headers={"X-CSRF-Token": client.csrf, "Content-Type": "application/json"},
    )
    assert sent.status_code == 200, sent.text
    [outcome] = sent.json()["outcomes"]
    assert outcome["band"] == "review", outcome
    return str(outcome["departure_id"])


def test_a_departure_review_decision_is_recorded(signed: Any, web_runtime: Runtime) -> None:
    client = signed("analyst", DEPARTURES)
    departure_id = _review_event(web_runtime, client)
    queue = client.http.get("/departures/review")
    assert queue.status_code == 200 and departure_id in queue.text
    short = client.post(f"/departures/review/{departure_id}", {"same_person": "no", "reason": "no"})
    assert "reason" in short.text and 'class="flash error"' in short.text
    done = client.post(
        f"/departures/review/{departure_id}",
        {"same_person": "no", "reason": "Name and birth date belong to someone else."},
    )
    assert done.status_code == 200 and "not the person proposed" in done.text
    assert f'action="/departures/review/{departure_id}"' not in done.text
    [entry] = _audit(web_runtime, "departure.reviewed", departure_id)
    assert entry.details.get("decision") == "not-the-person"


def test_overstay_report_has_a_chart_and_marks_small_cells(signed: Any) -> None:
    client = signed("analyst", "statistics")
    got = client.http.get("/departures/overstays")
    assert got.status_code == 200, got.text
    assert 'id="overstay-chart"' in got.text and "small cell" in got.text
    assert "By class of admission" in got.text
    officer = signed("officer.miami", DEPARTURES)
    assert officer.http.get("/departures/overstays").status_code == 403


# -- browser journeys -----------------------------------------------------------------------


def test_analyst_journey_in_the_browser(browser: Any, web_runtime: Runtime) -> None:
    tab = browser.sign_in("analyst", RESOLUTION, reason="weekly match review")
    tab.goto("/matches")
    links = tab.locator('[data-testid="match-queue"] a')
    assert links.count() > 0, "the demo world has no open match review"
    review_id = links.first.inner_text()
    links.first.click()
    tab.get_by_label("cannot tell (unsure: leave it to the model)").check()
    tab.get_by_label("Reason").fill("Passport matches but names are swapped; unsure.")
    browser.shot(tab, "analyst-match-review")
    tab.get_by_role("button", name="Record decision").click()
    assert "Recorded unsure" in tab.locator(".flash.ok").inner_text()
    assert _audit(web_runtime, "resolution.review_decided", review_id)

    tab.goto("/purpose?next=/policies")
    tab.locator(f'input[name="purpose"][value="{PRIORITY}"]').check()
    tab.get_by_label("Reason (optional)").fill("what-if for the quarterly report")
    tab.get_by_role("button", name="Work under this purpose").click()
    tab.get_by_role("button", name="Compare").click()
    assert tab.locator("#heatmap").is_visible()
    facts = tab.get_by_test_id("compare-facts").inner_text()
    assert "dhs-2021-guidelines" in facts and "dhs-2025-enforcement" in facts
    assert tab.locator("svg[role=img]").count() >= 4
    browser.shot(tab, "analyst-compare")

    tab.goto("/purpose?next=/departures")
    tab.locator(f'input[name="purpose"][value="{DEPARTURES}"]').check()
    tab.get_by_role("button", name="Work under this purpose").click()
    status = tab.locator("[data-sse-status]")
    status.filter(has_text="live").wait_for(timeout=10_000)  # an event arrived
    assert tab.locator('[data-testid="verified-today"]').inner_text().isdigit()
    browser.shot(tab, "analyst-departures")
    tab.context.close()
