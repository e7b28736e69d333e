"""Redress pages: the public filing and status forms (form token, no account, nothing lost on
a mistake) and the privacy officer's queue, triage and decision, on a loaded demo world."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient
from tests.oversight import redress_world as rw
from tests.oversight.redress_world import World, pick_subject

from immigrationos.accounts.service import DEMO_ACCOUNTS

world = rw.world  # the fixture, for this module
PASSWORDS = {a.username: a.password for a in DEMO_ACCOUNTS}


def _token(html: str) -> str:
    found = re.search(r'name="form_token" value="([^"]+)"', html)
    assert found, "no form token on the page"
    return found.group(1)


def _form(**over: str) -> dict[str, str]:
    values = {
        "requester_name": "Dana Counsel",
        "requester_contact": "12 Harbor Road, Miami",
        "authority": "attorney",
        "family_name": "Example",
        "birth_date": "1980-01-01",
        "kind_0": "conviction",
        "evidence_0": "a court certificate naming another person",
        "statement": "The conviction on file is not my client's.",
    }
    return {**values, **over}


def _signed(client: TestClient, username: str, purpose: str) -> str:
    """Sign in through the pages, choose the purpose; returns the session's CSRF token."""
    done = client.post("/login", data={"username": username, "password": PASSWORDS[username]})
    assert done.status_code == 200, done.text
    found = re.search(r'name="csrf-token" content="([^"]+)"', done.text)
    assert found
    chosen = client.post(
        "/purpose",
        data={"purpose": purpose, "justification": "test", "csrf_token": found.group(1)},
    )
    assert chosen.status_code == 200, chosen.text
    return found.group(1)


def _labelled(html: str) -> None:
    """Every form control of the page has a label naming it."""
    ids = set(re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', html))
    labelled = set(re.findall(r'<label for="([^"]+)"', html))
    assert ids <= labelled, ids - labelled


def test_the_public_form_files_a_request_and_loses_nothing(world: World) -> None:
    client = world.client()
    form = client.get("/redress/new")
    assert form.status_code == 200 and "immos_redress_form" in form.headers["set-cookie"]
    assert "samesite=strict" in form.headers["set-cookie"].lower()
    _labelled(form.text)
    token = _token(form.text)

    # another site's post carries no cookie: refused, and what was typed is kept
    stranger = TestClient(client.app, raise_server_exceptions=False)
    forged = stranger.post("/redress/new", data={**_form(), "form_token": token})
    assert forged.status_code == 403 and "another site" in forged.text
    assert 'value="Dana Counsel"' in forged.text

    # a mistake: the problems listed, every value kept
    wrong = client.post("/redress/new", data={**_form(family_name="", statement="too short"),
                                              "form_token": token})  # fmt: skip
    assert wrong.status_code == 422
    assert "identify the person" in wrong.text or "at least 10 characters" in wrong.text
    assert 'value="12 Harbor Road, Miami"' in wrong.text and "too short" in wrong.text
    assert 'value="conviction" selected' in wrong.text

    filed = client.post("/redress/new", data={**_form(), "form_token": _token(wrong.text)})
    assert filed.status_code == 200, filed.text
    ref = re.search(r'data-testid="reference">([^<]+)<', filed.text)
    code = re.search(r'data-testid="tracking-code">([^<]+)<', filed.text)
    assert ref and code

    # the status page, with the code; a wrong code is refused
    page = client.get("/redress/status", params={"reference": ref.group(1)})
    _labelled(page.text)
    seen = client.post("/redress/status", data={"reference": ref.group(1), "code": code.group(1),
                                                "form_token": _token(page.text)})  # fmt: skip
    assert seen.status_code == 200 and "received, waiting for review" in seen.text
    refused = client.post("/redress/status", data={"reference": ref.group(1), "code": "AAAA",
                                                   "form_token": _token(seen.text)})  # fmt: skip
    assert refused.status_code == 403 and "wrong tracking code" in refused.text


def test_the_privacy_officer_triages_and_decides_on_the_pages(world: World) -> None:
    subject = pick_subject(world)
    public = world.client()
    page = public.get("/redress/new")
    filed = public.post("/redress/new", data={**_form(), "form_token": _token(page.text)})
    ref = re.search(r'data-testid="reference">([^<]+)<', filed.text)
    code = re.search(r'data-testid="tracking-code">([^<]+)<', filed.text)
    assert ref and code
    reference = ref.group(1)

    officer = world.client()
    csrf = _signed(officer, "privacy", "redress")
    queue = officer.get("/redress")
    assert queue.status_code == 200 and reference in queue.text
    shown = officer.get(f"/redress/{reference}")
    assert shown.status_code == 200 and "Not linked yet" in shown.text
    _labelled(shown.text)
    linked = officer.post(f"/redress/{reference}/link",
                          data={"person_id": subject.person_id, "csrf_token": csrf})  # fmt: skip
    assert linked.status_code == 200 and "Linked to" in linked.text
    assert f'value="record_link|{subject.conviction_record}|"' in linked.text
    _labelled(linked.text)
    without = officer.post(f"/redress/{reference}/link", data={"person_id": subject.person_id})
    assert without.status_code == 403  # no CSRF token, no change

    marked = officer.post(f"/redress/{reference}/disputes",
                          data={"item": "0", "mark": f"record_link|{subject.conviction_record}|",
                                "csrf_token": csrf})  # fmt: skip
    assert marked.status_code == 200 and "1 facts marked disputed" in marked.text
    fact = re.search(r'name="verdict_(dsp-[0-9a-f]+)"', marked.text)
    assert fact
    decision: dict[str, Any] = {
        f"verdict_{fact.group(1)}": "accept",
        "reasons": "The court certificate names a different person.",
        "csrf_token": csrf,
    }
    preview = officer.post(f"/redress/{reference}/decision", data={**decision, "preview": "1"})
    assert preview.status_code == 200 and 'data-testid="plan"' in preview.text
    assert "Persons re-resolved" in preview.text and subject.person_id in preview.text
    decided = officer.post(f"/redress/{reference}/decision", data=decision)
    assert decided.status_code == 200 and "Decided: accepted" in decided.text
    assert 'data-testid="decided"' in decided.text
    letter = officer.get(f"/redress/{reference}/letter")
    assert letter.status_code == 200 and letter.content.startswith(b"%PDF")

    # the requester sees the decision and downloads the letter with the code
    page = public.get("/redress/status")
    seen = public.post("/redress/status", data={"reference": reference, "code": code.group(1),
                                                "form_token": _token(page.text)})  # fmt: skip
    assert "decided: accepted" in seen.text and "different person" in seen.text
    assert subject.person_id not in seen.text
    pdf = public.post("/redress/status/letter", data={"reference": reference,
                                                      "code": code.group(1),
                                                      "form_token": _token(seen.text)})  # fmt: skip
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")

    # an officer has no redress pages
    other = world.client()
    _signed(other, "officer.miami", "case-processing")
    assert other.get("/redress").status_code == 403
    assert other.get(f"/redress/{reference}").status_code == 403
