"""The document renderer: every kind prints its values and sources, and refuses defects."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pypdf
import pytest

from immigrationos.lifecycle import render as render_module
from immigrationos.lifecycle.render import (
    DETAINER_BASES,
    TEMPLATES,
    DocumentInput,
    DocumentRefused,
    Value,
    missing,
    render,
    template_version,
)

COURT = "court record IC123456789 (source: court, ingested 2026-10-01)"
OFFICER = "entered by officer.miami, 2026-11-20"
IDENT = "biometric match FIN 1234567890 (source: ident, ingested 2026-09-14)"
EOIR = "court calendar MIA-2027-0112 (source: eoir, ingested 2026-11-19)"
JAIL = "release roster DC-88 (source: county, ingested 2026-11-21)"
CARRIER = "passenger manifest FD204 (source: carrier, ingested 2027-02-21)"
ALLEGATIONS = ["You are not a U.S. citizen", "You were born in Freedonia"]

#: One synthetic value for every field any kind declares; each kind takes the ones it needs.
FIELDS: dict[str, Value] = {
    "family_name": Value("Family name", "QUINTERO-VALE", COURT),
    "given_name": Value("Given name", "Marisol", COURT),
    "birth_date": Value("Date of birth", date(1990, 3, 4), COURT),
    "nationality": Value("Nationality", "Freedonia", COURT),
    "a_number": Value("A-number", "A123456789", IDENT),
    "fin": Value("FIN", "1234567890", IDENT),
    "identifiers": Value("Identifiers", ["passport FD0012345", "licence Q-555-019"], OFFICER),
    "encounter_date": Value("Encounter", datetime(2026, 11, 20, 14, 5, tzinfo=UTC), OFFICER),
    "office": Value("Office", "Miami field office", None),
    "officer": Value("Officer", "officer.miami", None),
    "narrative": Value("Narrative", "Met at the county jail after a records check.", OFFICER),
    "disposition": Value("Disposition", "Referred for a notice to appear", OFFICER),
    "allegations": Value("Allegations", ALLEGATIONS, OFFICER),
    "charges": Value("Charges", ["INA 212(a)(6)(A)(i)"], OFFICER),
    "hearing_date": Value("Hearing date", date(2027, 1, 12), EOIR),
    "hearing_time": Value("Hearing time", "09:30", EOIR),
    "hearing_place": Value("Hearing place", "Miami Immigration Court", EOIR),
    "address": Value("Address", "12 Palm Way, Miami", OFFICER),
    "probable_cause": Value("Probable cause", ["Final order of 2 June 2025"], COURT),
    "requested_by": Value("Requested by", "officer.miami", None),
    "approved_by_name": Value("Authorising officer", "supervisor.miami", None),
    "probable_cause_basis": Value("Basis", DETAINER_BASES[0], COURT),
    "facility": Value("Facility", "Dade County Jail", OFFICER),
    "warrant_reference": Value("Warrant", "W-2026-0042", None),
    "release_date": Value("Scheduled release", date(2026, 12, 1), JAIL),
    "final_order_basis": Value("Final order", "Order of an immigration judge", COURT),
    "final_order_date": Value("Date of final order", date(2025, 6, 2), COURT),
    "destination_country": Value("Destination", "Freedonia", COURT),
    "departure_deadline": Value("Depart by", date(2027, 3, 1), COURT),
    "bond_amount": Value("Bond (USD)", 1500, COURT),
    "bond_due_date": Value("Bond due", date(2027, 1, 17), COURT),
    "consequences": Value("Consequences", "Leave on time or the alternate order applies.", COURT),
    "departed_at": Value("Departed", datetime(2027, 2, 20, 16, 45, tzinfo=UTC), CARRIER),
    "port": Value("Port", "Miami International Airport", CARRIER),
    "evidence": Value("Evidence", "Airline manifest and boarding record", CARRIER),
    "carrier": Value("Carrier", "Freedonian Air", CARRIER),
    "flight": Value("Flight", "FD 204", CARRIER),
    "document_number": Value("Travel document", "FD0012345", OFFICER),
    "case_outcome": Value("Outcome", "Voluntary departure completed", OFFICER),
    "case_state_description": Value("Case", "Your case is waiting for a hearing.", OFFICER),
    "next_step": Value("Next step", "Go to your hearing.", OFFICER),
    "next_deadline": Value("Deadline", date(2027, 1, 12), EOIR),
}  # fmt: skip

#: How the non-text values print; every other value prints as itself.
DISPLAY = {
    "birth_date": "4 March 1990",
    "encounter_date": "20 November 2026, 14:05 UTC",
    "hearing_date": "12 January 2027",
    "release_date": "1 December 2026",
    "final_order_date": "2 June 2025",
    "departure_deadline": "1 March 2027",
    "bond_amount": "1,500",
    "bond_due_date": "17 January 2027",
    "departed_at": "20 February 2027, 16:45 UTC",
    "next_deadline": "12 January 2027",
}


def complete(kind: str) -> dict[str, Value]:
    """Every required and optional field of ``kind`` filled in."""
    spec = TEMPLATES[kind]
    return {name: FIELDS[name] for name in (*spec.required, *spec.optional)}


def doc(kind: str, values: dict[str, Value] | None = None, *, draft: bool = True) -> DocumentInput:
    """A document of ``kind``: a draft by an officer, or final with a supervisor's approval."""
    return DocumentInput(
        kind=kind,
        case_id="case-7f3a",
        person_id="person-19c2",
        values=complete(kind) if values is None else values,
        draft=draft,
        generated_at=datetime(2026, 11, 21, 9, 0, tzinfo=UTC),
        issued_by="officer.miami",
        approved_by=None if draft else "supervisor.miami",
    )


def pdf_text(pdf: bytes | None) -> str:
    """All pages' text with whitespace collapsed, so wrapped lines still match."""
    assert pdf is not None and pdf.startswith(b"%PDF")
    pages = pypdf.PdfReader(io.BytesIO(pdf)).pages
    return " ".join(" ".join(page.extract_text() for page in pages).split())


def expected(name: str) -> list[str]:
    """The strings a field's value should show as."""
    value = FIELDS[name].value
    return list(value) if isinstance(value, list) else [DISPLAY.get(name, str(value))]


Printed = Callable[[str, bool], str]


@pytest.fixture(scope="module")
def printed() -> Printed:
    """PDF text of a kind as a draft or approved, each printed at most once per module.

    WeasyPrint is slow to start; printing on demand keeps parallel workers from each
    printing every kind.
    """
    texts: dict[tuple[str, bool], str] = {}

    def text(kind: str, draft: bool) -> str:
        if (kind, draft) not in texts:
            texts[kind, draft] = pdf_text(render(doc(kind, draft=draft)).pdf)
        return texts[kind, draft]

    return text


def test_every_kind_has_a_template_and_sample_values() -> None:
    for kind, spec in TEMPLATES.items():
        assert spec.kind == kind
        assert (render_module.TEMPLATE_DIR / f"{kind}.html.j2").is_file()
        assert set(spec.required).isdisjoint(spec.optional)
        assert missing(kind, complete(kind)) == []


@pytest.mark.parametrize("kind", sorted(TEMPLATES))
def test_draft_pdf_shows_title_values_sources_and_draft(printed: Printed, kind: str) -> None:
    text = printed(kind, True)
    spec = TEMPLATES[kind]
    assert spec.title in text
    assert "Synthetic demonstration document — not an official form" in text
    assert "DRAFT — not valid until approved" in text
    assert "Approved by" not in text
    assert "case-7f3a" in text and "person-19c2" in text and template_version(kind) in text
    for name in complete(kind):
        for shown in expected(name):
            assert shown in text, f"{kind}: {name} value {shown!r} not printed"
    for source in {v.source for v in complete(kind).values() if v.source}:
        assert source in text, f"{kind}: source {source!r} not in the footnotes"


@pytest.mark.parametrize("kind", sorted(TEMPLATES))
def test_approved_pdf_has_no_draft_mark_and_names_the_approver(printed: Printed, kind: str) -> None:
    text = printed(kind, False)
    assert "DRAFT" not in text
    assert "Approved by supervisor.miami" in text
    assert TEMPLATES[kind].title in text


def test_draft_watermark_is_fixed_so_it_repeats_on_every_page() -> None:
    html = render(doc("notice_to_appear"), pdf=False).html
    assert '<div class="watermark"' in html
    assert "position: fixed" in html
    assert (
        '<div class="watermark"' not in render(doc("notice_to_appear", draft=False), pdf=False).html
    )


@pytest.mark.parametrize("field", ["hearing_date", "hearing_time", "hearing_place"])
def test_notice_to_appear_without_hearing_details_is_refused_as_defective(field: str) -> None:
    values = complete("notice_to_appear")
    del values[field]
    assert missing("notice_to_appear", values) == [field]
    with pytest.raises(DocumentRefused) as refused:
        render(doc("notice_to_appear", values), pdf=False)
    message = str(refused.value)
    assert "notice_to_appear" in message and field in message and "defective" in message
    assert "Pereira v. Sessions, 585 U.S. 198 (2018)" in message
    assert "Niz-Chavez v. Garland, 593 U.S. 155 (2021)" in message


def test_refusal_names_every_missing_field() -> None:
    values = complete("notice_to_appear")
    values["hearing_time"] = Value("Hearing time", "  ", None)
    values["charges"] = Value("Charges", [], OFFICER)
    values["a_number"] = Value("A-number", None, IDENT)
    del values["hearing_place"]
    gaps = ["a_number", "charges", "hearing_time", "hearing_place"]
    assert missing("notice_to_appear", values) == gaps
    with pytest.raises(DocumentRefused, match="missing a_number, charges, hearing_time, hearing"):
        render(doc("notice_to_appear", values), pdf=False)


def test_other_kinds_refuse_without_the_hearing_citation() -> None:
    values = complete("detainer")
    del values["release_date"]
    with pytest.raises(DocumentRefused, match="release_date") as refused:
        render(doc("detainer", values), pdf=False)
    assert "Pereira" not in str(refused.value)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(DocumentRefused, match="unknown document kind 'i_9'"):
        render(doc("i_9", {}), pdf=False)
    with pytest.raises(DocumentRefused):
        missing("i_9", {})
    with pytest.raises(DocumentRefused):
        template_version("i_9")


def test_values_the_kind_does_not_declare_are_never_printed() -> None:
    values = {**complete("vd_notice"), "hair_colour": Value("Hair colour", "auburn", "gossip")}
    html = render(doc("vd_notice", values), pdf=False).html
    assert "auburn" not in html and "gossip" not in html and "Hair colour" not in html


def test_detainer_basis_must_be_one_of_the_fixed_list() -> None:
    values = {**complete("detainer"), "probable_cause_basis": Value("Basis", "a hunch", None)}
    with pytest.raises(DocumentRefused, match="DETAINER_BASES"):
        render(doc("detainer", values), pdf=False)


def test_values_are_escaped() -> None:
    values = {**complete("encounter_record")}
    values["narrative"] = Value("Narrative", "<script>alert(1)</script>", "<b>forged</b>")
    html = render(doc("encounter_record", values), pdf=False).html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>forged" not in html and "&lt;b&gt;forged&lt;/b&gt;" in html


def test_sources_share_footnotes_and_unsourced_values_have_none() -> None:
    html = render(doc("arrest_warrant"), pdf=False).html
    # family name, given name, birth date, nationality and probable cause share COURT: [1]
    assert html.count('href="#note-1"') == 5
    assert html.count(COURT) == 1 and html.count(IDENT) == 1
    assert html.count('<li value="') == 2
    requested = html.split("<dt>Requested by</dt>")[1].split("</dd>")[0]
    assert "officer.miami" in requested and "note" not in requested


def test_dates_datetimes_and_lists_format_for_readers() -> None:
    values = complete("encounter_record")
    eastern = timezone(timedelta(hours=-5))
    values["encounter_date"] = Value(
        "Encounter", datetime(2026, 11, 21, 4, 0, tzinfo=eastern), None
    )
    html = render(doc("encounter_record", values), pdf=False).html
    assert "4 March 1990" in html
    assert "21 November 2026, 09:00 UTC" in html
    assert "<ul><li>passport FD0012345</li><li>licence Q-555-019<sup" in html


def test_detainer_limits_the_hold_to_48_hours(printed: Printed) -> None:
    text = printed("detainer", False)
    assert "expires 48 hours after the scheduled release" in text
    assert "not a request to hold the person beyond those 48 hours" in text


def test_voluntary_departure_defaults_the_consequences() -> None:
    values = complete("vd_notice")
    del values["consequences"]
    html = " ".join(render(doc("vd_notice", values), pdf=False).html.split())
    assert "alternate order of removal takes effect" in html and "10 years" in html


def test_case_status_notice_lists_the_persons_rights(printed: Printed) -> None:
    text = printed("case_status_notice", False)
    for right in (
        "You can have a lawyer. The government will not pay for one.",
        "free legal service providers",
        "a hearing before an immigration judge",
        "You usually have 30 days",
        "You can ask for protection",
        "consulate",
        "A U.S. citizen cannot be removed.",
    ):
        assert right in text


def test_same_input_gives_the_same_pdf_hash() -> None:
    first, second = (render(doc("vd_notice")) for _ in range(2))
    assert first.pdf is not None and first.sha256 == second.sha256
    html_only = render(doc("vd_notice"), pdf=False)
    assert html_only.pdf is None and html_only.sha256 != first.sha256
    assert html_only.html == first.html


def test_template_version_is_stable_and_follows_the_template_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = template_version("detainer")
    assert version == template_version("detainer")
    assert version.startswith("detainer@") and len(version) == len("detainer@") + 12
    copy = tmp_path / "templates"
    shutil.copytree(render_module.TEMPLATE_DIR, copy)
    monkeypatch.setattr(render_module, "TEMPLATE_DIR", copy)
    assert template_version("detainer") == version
    (copy / "detainer.html.j2").write_text((copy / "detainer.html.j2").read_text() + "\n")
    changed = template_version("detainer")
    assert changed != version
    assert render(doc("detainer"), pdf=False).template_version == changed
    (copy / "style.css").write_text("")
    assert template_version("detainer") not in (version, changed)
