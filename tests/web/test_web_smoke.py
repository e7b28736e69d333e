"""The fixtures work: the demo world serves the start page to a signed-in officer."""

from __future__ import annotations

from typing import Any


def test_officer_signs_in_and_sees_purpose(signed: Any) -> None:
    client = signed("officer.miami", "case-processing")
    page = client.http.get("/")
    assert page.status_code == 200
    assert 'data-testid="purpose">case-processing<' in page.text
