"""The group check of incremental linking: a new record against the person's other records."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from immigrationos.resolution.incremental import LinkDecision, LinkIndex
from immigrationos.resolution.model import Parameters
from immigrationos.resolution.records import RAW_SCHEMA, feature_row, features
from immigrationos.resolution.service import shipped_model

#: The model as an index of a million records applies it (its prior rescaled).
DOC = shipped_model().for_records(1_000_000)
A_DIFFERENT = Parameters(DOC).different_weight("a_number")


def _raw(uid: str, **fields: Any) -> dict[str, Any]:
    base = {"given_name": "Maria", "family_name": "Lopez", "birth_date": "1980-05-05"}
    row = {c: None for c in RAW_SCHEMA.names}
    return {**row, **base, **fields, "unique_id": uid, "source_id": uid.split(":")[0]}


def _word(n: int) -> str:
    letters = "bcdfghjklmnprstvz"
    out = ""
    while True:
        n, k = divmod(n, len(letters))
        out += letters[k] + "aeiou"[k % 5]
        if not n:
            return out.capitalize()


#: Everyone else in the index: names of their own, born on other days (never candidates), so
#: that Maria and Lopez are rare names here, as in a real index.
FILLER = [
    _raw(f"visas:F{n}", given_name=_word(n), family_name=_word(n + 7919),
         birth_date=f"19{40 + n % 50}-{1 + n % 12:02d}-{1 + n % 27:02d}")
    for n in range(1, 600)
]  # fmt: skip


def _index(rows: list[dict[str, Any]], person_of: dict[str, str]) -> LinkIndex:
    table = features(pa.Table.from_pylist(rows + FILLER, schema=RAW_SCHEMA))
    everyone = {**{r["unique_id"]: r["unique_id"] for r in FILLER}, **person_of}
    return LinkIndex.build(table, everyone, DOC)


#: Person P1: a naturalisation certificate (name and birth date only) and a court record
#: naming A-number A111111111. Person P9: someone else entirely.
BASE = [
    _raw("citizenship:NC1"),
    _raw("court:C1", a_number="A111111111", sex="F"),
    _raw("arrivals:X9", given_name="Tomas", family_name="Berg", birth_date="1955-02-03",
         passport_no="Q1234567", passport_country="SWE"),
]  # fmt: skip
PERSONS = {"citizenship:NC1": "P1", "court:C1": "P1", "arrivals:X9": "P9"}
#: Records that share only the birth date: blocked with the new record, never close to it
#: (more than four candidates, so the records are scored as arrays, not pair by pair).
CROWD = [
    _raw(f"visas:V{n}", given_name=name, family_name="Okafor", passport_no=f"N{n}000000")
    for n, name in enumerate(["Ada", "Bola", "Chidi", "Dayo", "Emeka", "Femi"])
]


def _group_parts(decision: LinkDecision) -> list[str]:
    return [c["comparison"] for c in decision.explanation["contributions"]
            if c["comparison"].startswith("group: ")]  # fmt: skip


def test_a_namesake_without_the_identifier_links() -> None:
    """The certificate alone, name and birth date exact: the pair links (the premise)."""
    index = _index(BASE, PERSONS)
    decision = index.link(_raw("encounters:E1"))
    assert decision.band == "linked" and decision.person_id == "P1"
    assert decision.match_weight is not None and decision.match_weight >= DOC.link_weight
    assert _group_parts(decision) == []


@pytest.mark.parametrize("crowd", [False, True], ids=["pair by pair", "as arrays"])
def test_another_a_number_on_the_person_holds_the_link_back(crowd: bool) -> None:
    index = _index(BASE + (CROWD if crowd else []), {**PERSONS, **{r["unique_id"]: r["unique_id"]
                                                                   for r in CROWD}})  # fmt: skip
    alone = index.link(_raw("encounters:E1"))
    other = index.link(_raw("encounters:E2", a_number="A222222222"))
    assert other.band == "review"  # still above the review weight
    assert _group_parts(other) == ["group: a_number"]
    assert "their other records hold another A-number" in other.explanation["reason"]
    assert "group check" not in alone.explanation["reason"]
    # The best pair is still the certificate; the court record's own pair compared the
    # A-numbers already, so only the certificate's pair carries the group's disagreement.
    assert other.explanation["partner_record_id"] == "citizenship:NC1"
    assert other.match_weight == pytest.approx(alone.match_weight + A_DIFFERENT)  # type: ignore[operator]
    parts = other.explanation["contributions"]  # rounded to 3 decimals each
    total = sum(c["weight"] + c["tf_adjustment"] for c in parts) + Parameters(DOC).prior_weight
    assert total == pytest.approx(other.match_weight, abs=0.01)


def test_the_same_a_number_links() -> None:
    index = _index(BASE, PERSONS)
    decision = index.link(_raw("encounters:E3", a_number="A111111111"))
    assert decision.band == "linked" and decision.person_id == "P1"
    assert _group_parts(decision) == []


def test_records_added_later_count() -> None:
    index = _index(BASE[:1] + BASE[2:], {"citizenship:NC1": "P1", "arrivals:X9": "P9"})
    assert index.link(_raw("encounters:E4", a_number="A222222222")).band == "linked"
    added = _raw("court:C1", a_number="A111111111", sex="F")
    index.add("court:C1", feature_row(added), "P1")
    decision = index.link(_raw("encounters:E4", a_number="A222222222"))
    assert decision.band != "linked" and _group_parts(decision) == ["group: a_number"]


@pytest.mark.parametrize(("court_date", "apart"), [("1980-01-01", False), ("1975-03-03", True)])
def test_a_defaulted_birth_date_is_not_a_disagreement(court_date: str, apart: bool) -> None:
    """A person's record dated 1 January (a default) says nothing against another date; any
    other date does. The pair's record (the certificate) has no birth date of its own."""
    rows = [_raw("citizenship:NC1", birth_date=None, a_number="A111111111"),
            _raw("court:C1", birth_date=court_date)]  # fmt: skip
    index = _index(rows, {"citizenship:NC1": "P1", "court:C1": "P1"})
    decision = index.link(_raw("encounters:E5", a_number="A111111111"))
    assert decision.person_id == "P1"
    assert decision.explanation["partner_record_id"] == "citizenship:NC1"
    assert ("group: birth_date" in _group_parts(decision)) is apart
    assert (decision.band == "linked") is not apart


def test_batches_decide_as_one_at_a_time() -> None:
    index = _index(BASE + CROWD, {**PERSONS, **{r["unique_id"]: r["unique_id"] for r in CROWD}})
    raws = [_raw("encounters:E1"), _raw("encounters:E2", a_number="A222222222"),
            _raw("encounters:E3", a_number="A111111111"),
            _raw("encounters:E6", given_name="Tomas", family_name="Berg",
                 birth_date="1955-02-03", a_number="A999999999")]  # fmt: skip
    one = [index.link(r) for r in raws]
    many = index.link_many([feature_row(r) for r in raws])
    for a, b in zip(one, many, strict=True):
        assert (a.band, a.person_id, a.match_weight) == (b.band, b.person_id, b.match_weight)
        assert a.explanation["contributions"] == b.explanation["contributions"]


def test_the_departure_matcher_says_why_it_did_not_verify() -> None:
    """A departure naming another passport than the person's, matched through a record with
    none (the certificate; the surname with a typo): linked, but held below the verify
    weight by the group check, and the reason says so."""
    from datetime import UTC, datetime

    from immigrationos.departures.events import read_event
    from immigrationos.departures.matcher import Matcher

    arrival = _raw("arrivals:A1", passport_no="M1111111", passport_country="MEX",
                   given_name="Mariana", family_name="Lopez Ruiz")  # fmt: skip
    rows = [_raw("citizenship:NC1"), arrival]
    index = _index(rows, {"citizenship:NC1": "P1", "arrivals:A1": "P1"})
    matcher = Matcher(index, "test", datetime.now(UTC))
    event = read_event(
        {"event_id": "EV1", "channel": "land_exit", "occurred_at": "2026-10-01T12:00:00Z",
         "port": "Laredo", "given_name": "Maria", "family_name": "Lopes",
         "birth_date": "1980-05-05", "document_no": "M2222222", "document_country": "MEX"}
    )  # fmt: skip
    result = matcher.match(event, "departures:EV1")
    assert result.explanation["path"] == "fuzzy"
    assert result.explanation["partner_record_id"] == "citizenship:NC1"
    assert result.band == "review" and result.person_id == "P1"
    assert "below the departure matcher's verification weight" in result.explanation["reason"]
    assert "their other records hold another passport number" in result.explanation["reason"]
