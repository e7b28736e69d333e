"""The search and person pages (and their API): spelling-tolerant search, identifiers, the
audit entry of every search, separation of duties, what a purpose may not see, provenance on
demand, match explanations, merged ids; and one officer's journey in a real browser."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select

from immigrationos.audit.models import AuditEntry
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.persons.models import Identifier, Person
from immigrationos.runtime import Runtime
from immigrationos.store.engine import transaction

#: Given names and a spelling of the same name in another transliteration or as a nickname.
VARIANTS = {
    "Mohammed": "Muhammad",
    "Muhammad": "Mohamed",
    "Ahmad": "Ahmed",
    "Ahmed": "Ahmad",
    "William": "Bill",
    "Robert": "Bob",
    "Yusuf": "Youssef",
}


def _variant_person(runtime: Runtime) -> tuple[Person, str]:
    """A person whose given name has a known variant, and the variant misspelt by one letter."""
    with unit_of_work(runtime.sessions, system_context(Purpose.CASE_PROCESSING)) as gw:
        people = gw.search(
            Person,
            Person.given_name.in_(list(VARIANTS)),
            Person.status == "active",
            func.length(Person.family_name) >= 4,
            params={"test": "variant person"},
            order_by=(Person.id,),
            limit=1,
        )
    assert people, "the demo world has no person with a common variant name"
    person = people[0]
    family = str(person.family_name).split()[0]
    misspelt = family[:-1] + family[-1] * 2  # "Qasim" → "Qasimm"
    return person, f"{VARIANTS[str(person.given_name)]} {misspelt}"


def _last_search(runtime: Runtime, username: str) -> AuditEntry:
    with transaction(runtime.sessions) as session:
        entry = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "records.searched", AuditEntry.actor_name == username)
            .where(AuditEntry.object_type == "persons")
            .order_by(AuditEntry.seq.desc())
            .limit(1)
        ).one()
        session.expunge(entry)
    return entry


def test_variant_spelling_finds_the_person_and_the_search_is_audited(
    signed: Any, web_runtime: Runtime
) -> None:
    person, query = _variant_person(web_runtime)
    client = signed("officer.miami", "case-processing")
    found = client.http.get("/api/persons/search", params={"name": query})
    assert found.status_code == 200, found.text
    body = found.json()
    assert person.id in [r["id"] for r in body["results"]]
    hit = next(r for r in body["results"] if r["id"] == person.id)
    assert any("transliteration or nickname" in why for why in hit["match"]), hit
    entry = _last_search(web_runtime, "officer.miami")
    assert entry.search_params is not None and entry.search_params["name"] == query
    assert entry.result_count == body["count"] and entry.purpose == "case-processing"

    page = client.http.get("/search", params={"name": query})
    assert page.status_code == 200
    assert f'href="/persons/{person.id}"' in page.text
    assert _last_search(web_runtime, "officer.miami").seq > entry.seq  # the page is audited too


def test_htmx_search_returns_only_the_results(signed: Any, web_runtime: Runtime) -> None:
    person, query = _variant_person(web_runtime)
    client = signed("supervisor.miami", "case-processing")
    headers = {"HX-Request": "true", "HX-Target": "results"}
    part = client.http.get("/search", params={"name": query}, headers=headers)
    assert part.status_code == 200
    assert "<html" not in part.text and f"/persons/{person.id}" in part.text


def test_search_by_identifier_in_another_typing(signed: Any, web_runtime: Runtime) -> None:
    with unit_of_work(web_runtime.sessions, system_context(Purpose.CASE_PROCESSING)) as gw:
        ident = gw.search(
            Identifier,
            Identifier.kind == "a_number",
            Identifier.person_id.is_not(None),
            Identifier.source_id != "tax_addresses",
            params={"test": "identifier"},
            order_by=(Identifier.id,),
            limit=1,
        )[0]
    typed = "-".join(re.findall(".{1,3}", ident.value.lower()))  # "a01-035-…"
    client = signed("counsel", "case-processing")
    found = client.http.get("/api/persons/search", params={"identifier": typed})
    assert found.status_code == 200, found.text
    assert [r["id"] for r in found.json()["results"]] == [ident.person_id]
    entry = _last_search(web_runtime, "counsel")
    assert entry.search_params == {"identifier": typed, "limit": 25}
    assert entry.result_count == 1


@pytest.mark.parametrize("username", ["admin", "auditor"])
def test_administrator_and_auditor_are_refused(signed: Any, username: str) -> None:
    client = signed(username)
    assert client.http.get("/search", params={"name": "Smith"}).status_code == 403
    assert client.http.get("/api/persons/search", params={"name": "Smith"}).status_code == 403
    assert client.http.get("/persons/per-anything").status_code == 403
    assert client.http.get("/api/persons/per-anything").status_code == 403


def test_a_purpose_that_may_not_read_a_source_shows_it_withheld(
    signed: Any, web_runtime: Runtime
) -> None:
    person, query = _variant_person(web_runtime)
    client = signed("officer.miami", "departure-verification")
    found = client.http.get("/api/persons/search", params={"name": query}).json()
    assert "court" in found["withheld_sources"]
    assert "does not permit purpose 'departure-verification'" in found["withheld_sources"]["court"]
    page = client.http.get("/search", params={"name": query})
    assert "Left out under this purpose" in page.text and "<code>court</code>" in page.text
    view = client.http.get(f"/api/persons/{person.id}").json()
    assert "court" in view["withheld_sources"]
    for attribute, entry in view["golden"].items():  # no value from a withheld source
        assert entry["source_id"] not in view["withheld_sources"], attribute
    withheld_links = [link for link in view["links"] if link["withheld"]]
    shown = client.http.get(f"/persons/{person.id}").text
    assert "Left out under this purpose" in shown
    assert shown.count("Withheld under this purpose") == len(withheld_links)


def test_person_page_shows_sources_on_demand_and_match_explanations(
    signed: Any, web_runtime: Runtime
) -> None:
    person, _ = _variant_person(web_runtime)
    client = signed("officer.houston", "case-processing")
    view = client.http.get(f"/api/persons/{person.id}").json()
    given = view["golden"]["given_name"]
    page = client.http.get(f"/persons/{person.id}")
    assert page.status_code == 200
    block = re.search(r'data-testid="source-given_name">(.*?)</details>', page.text, re.S)
    assert block, "the given name has no source disclosure"
    assert f"<strong>{given['source_id']}</strong>" in block.group(1)
    assert given["record_key"] in block.group(1)
    linked = [link for link in view["links"] if not link["withheld"]]
    assert linked and all("contributions" in link["explanation"] for link in linked)
    if any(link["explanation"]["contributions"] for link in linked):
        assert "Match explanation" in page.text
    assert "Tier and score not shown" in page.text  # case-processing reads no priority
    assert "None: no redress request" in page.text or 'data-testid="redress"' in page.text


def test_merged_id_redirects_to_the_surviving_person(signed: Any, web_runtime: Runtime) -> None:
    survivor, _ = _variant_person(web_runtime)
    retired = "per-test-merged-people"
    with unit_of_work(web_runtime.sessions, system_context(Purpose.IDENTITY_RESOLUTION)) as gw:
        if not gw.search(Person, Person.id == retired, params={"test": "merged"}):
            gw.add(Person(id=retired, status="merged", merged_into_id=survivor.id, golden={}))
    client = signed("analyst", "identity-resolution")
    page = client.http.get(f"/persons/{retired}", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == f"/persons/{survivor.id}?merged={retired}"
    followed = client.http.get(page.headers["location"])
    assert followed.status_code == 200 and f"Person {retired} was merged" in followed.text
    api = client.http.get(f"/api/persons/{retired}").json()
    assert api["redirected"] is True and api["person_id"] == survivor.id


def test_office_bound_officer_may_not_search_another_office(signed: Any) -> None:
    client = signed("officer.miami", "case-processing")
    assert client.http.get("/api/persons/search", params={"office": "Houston"}).status_code == 403
    mine = client.http.get("/api/persons/search", params={"office": "Miami"})
    assert mine.status_code == 200 and mine.json()["count"] > 0


def test_officer_journey_in_the_browser(browser: Any, web_runtime: Runtime) -> None:
    person, query = _variant_person(web_runtime)
    tab = browser.sign_in("officer.miami", "case-processing", reason="people journey")
    tab.goto("/search")
    tab.get_by_label("Name", exact=True).fill(query)
    tab.get_by_role("button", name="Search").click()
    link = tab.locator(f'a[href="/persons/{person.id}"]')
    link.wait_for()
    assert "name=" in tab.url  # htmx pushed the search into the address bar
    browser.shot(tab, "officer-search")
    link.click()
    tab.wait_for_url(f"**/persons/{person.id}")
    source = tab.get_by_test_id("source-family_name")
    source.locator("summary").click()
    assert source.get_attribute("open") is not None
    assert source.get_by_text("agree").is_visible()
    browser.shot(tab, "officer-person")
    entry = _last_search(web_runtime, "officer.miami")
    assert entry.search_params is not None and entry.search_params["name"] == query
    assert entry.result_count is not None and entry.result_count >= 1
    tab.context.close()
