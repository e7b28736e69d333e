"""Noise: configuration checks, and rates measured in the written output against the truth."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from synthkit import joined

from immigrationos.synth import NoiseConfig
from immigrationos.synth.names import deaccent

TOLERANCE = 0.035  # about 4 standard deviations at rate 0.2 with 2000+ eligible records
DOB_SOURCES = ["arrivals", "visas", "benefits", "court", "encounters", "convictions",
               "citizenship_evidence", "departures"]  # fmt: skip
DOC_COLUMN = {"arrivals": "passport_no", "visas": "passport_no", "departures": "document_no"}
PLACEHOLDER_NAMES = {("NA", "NA"), ("UNKNOWN", "UNKNOWN")}


def _rows(out: Path, sources: list[str]) -> list[tuple[dict[str, Any], dict[str, Any], list[str]]]:
    return [item for name in sources for item in joined(out, name)]


def _swap(iso: str) -> str:
    d = date.fromisoformat(iso)
    return date(d.year, d.day, d.month).isoformat()


def _true_names(person: dict[str, Any]) -> tuple[str, str]:
    return person["given_name"] or "FNU", person["family_name"]


def _placeholder(row: dict[str, Any], doc: str | None) -> bool:
    names = (row["given_name"], row["family_name"]) in PLACEHOLDER_NAMES
    return names or row.get("birth_date") == "1900-01-01" or (doc is not None and row[doc] == "XXX")


@pytest.mark.parametrize("name", NoiseConfig.names())
@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, "0.1", True])
def test_out_of_range_rates_raise_naming_the_parameter(name: str, bad: Any) -> None:
    with pytest.raises(ValueError, match=name):
        NoiseConfig(**{name: bad})


def test_unknown_rate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="tpyo"):
        NoiseConfig().with_rates(tpyo=0.1)


def test_zero_noise_gives_records_equal_to_the_truth(clean_world: Path) -> None:
    items = _rows(clean_world, [*DOB_SOURCES, "tax_addresses"])
    assert len(items) > 2000
    for row, person, kinds in items:
        assert kinds == []
        assert (row["given_name"], row["family_name"]) == _true_names(person)
        assert row.get("birth_date", person["birth_date"]) == person["birth_date"]


def test_unlabelled_records_equal_the_truth_under_default_noise(default_world: Path) -> None:
    items = _rows(default_world, DOB_SOURCES)
    clean = [(row, person) for row, person, kinds in items if not kinds]
    assert 0.3 < len(clean) / len(items) < 0.95
    for row, person in clean:
        assert (row["given_name"], row["family_name"]) == _true_names(person)
        assert row["birth_date"] == person["birth_date"]


def test_day_month_swap_rate(doc_world: Path) -> None:
    eligible = [
        (row, person)
        for row, person, kinds in _rows(doc_world, DOB_SOURCES)
        if "placeholder" not in kinds
        and (d := date.fromisoformat(person["birth_date"])).day <= 12
        and d.day != d.month
    ]
    swapped = [row["birth_date"] == _swap(person["birth_date"]) for row, person in eligible]
    assert len(eligible) > 2000
    assert abs(sum(swapped) / len(eligible) - 0.2) < TOLERANCE


def test_first_of_january_rate(doc_world: Path) -> None:
    eligible = [
        (row, person)
        for row, person, kinds in _rows(doc_world, DOB_SOURCES)
        if "placeholder" not in kinds
        and not person["birth_date"].endswith("-01-01")
        and "dob_day_month_swap" not in kinds
    ]
    jan1 = [row["birth_date"] == person["birth_date"][:4] + "-01-01" for row, person in eligible]
    assert abs(sum(jan1) / len(eligible) - 0.2) < TOLERANCE


def test_placeholder_rate(doc_world: Path) -> None:
    items = []
    for name in [*DOB_SOURCES, "tax_addresses"]:
        items += [(row, DOC_COLUMN.get(name)) for row, _, _ in joined(doc_world, name)]
    share = sum(_placeholder(row, doc) for row, doc in items) / len(items)
    assert abs(share - 0.2) < TOLERANCE


def test_missing_document_rate(doc_world: Path) -> None:
    items = [
        (row[DOC_COLUMN[name]], kinds)
        for name in DOC_COLUMN
        for row, _, kinds in joined(doc_world, name)
        if "placeholder" not in kinds
    ]
    share = sum(number is None for number, _ in items) / len(items)
    assert abs(share - 0.2) < TOLERANCE


def test_documents_belong_to_the_person_and_renewals_are_mixed_in(doc_world: Path) -> None:
    renewed = eligible = 0
    for name, column in DOC_COLUMN.items():
        for row, person, kinds in joined(doc_world, name):
            if row[column] in (None, "XXX"):
                continue
            assert row[column] in person["passports"], (name, row, person["passports"])
            if len(person["passports"]) >= 2:
                eligible += 1
                renewed += "passport_renewed" in kinds
    assert 0.12 < renewed / eligible < 0.2 + TOLERANCE


def test_duplicate_a_number_rate_and_use(doc_world: Path) -> None:
    persons = pq.read_table(doc_world / "truth/persons.parquet").column("a_numbers").to_pylist()
    holders = [a for a in persons if a]
    assert abs(sum(len(a) == 2 for a in holders) / len(holders) - 0.2) < TOLERANCE
    used_second = 0
    for name in ("benefits", "court", "encounters"):
        for row, person, _ in joined(doc_world, name):
            if row["a_number"]:
                assert row["a_number"] in person["a_numbers"]
                used_second += row["a_number"] == person["a_numbers"][-1] != person["a_numbers"][0]
    assert used_second > 0


def test_missing_a_number_rate_in_encounters(doc_world: Path) -> None:
    items = [row for row, person, _ in joined(doc_world, "encounters") if person["a_numbers"]]
    share = sum(row["a_number"] is None for row in items) / len(items)
    assert abs(share - 0.2) < 0.06  # fewer encounters than other records: wider tolerance


def _edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance (a transposition counts as one edit)."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(
                d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])
            )
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def _is_swapped(row: dict[str, Any], person: dict[str, Any]) -> bool | None:
    given, family = _true_names(person)
    return None if given == family else (row["given_name"], row["family_name"]) == (family, given)


def _is_typo(row: dict[str, Any], person: dict[str, Any]) -> bool | None:
    given, family = _true_names(person)
    moved = _edit_distance(row["given_name"], given) + _edit_distance(row["family_name"], family)
    return moved == 1


def _is_one_surname(row: dict[str, Any], person: dict[str, Any]) -> bool | None:
    if person["name_culture"] not in ("hispanic", "portuguese"):
        return None
    return row["family_name"] != person["family_name"]


def _is_deaccented(row: dict[str, Any], person: dict[str, Any]) -> bool | None:
    given, family = _true_names(person)
    if (given + family).isascii():
        return None
    return (row["given_name"], row["family_name"]) == (deaccent(given), deaccent(family))


MEASURES: dict[str, Callable[[dict[str, Any], dict[str, Any]], bool | None]] = {
    "name_order_swap": _is_swapped,
    "typo": _is_typo,
    "one_surname": _is_one_surname,
    "accent_drop": _is_deaccented,
}


@pytest.mark.parametrize("kind", sorted(MEASURES))
def test_name_noise_rate_measured_in_the_output(
    kind: str, name_world: Callable[[str], Path]
) -> None:
    out = name_world(kind)
    seen = [MEASURES[kind](row, person) for row, person, _ in _rows(out, DOB_SOURCES)]
    eligible = [s for s in seen if s is not None]
    assert len(eligible) > 1000
    assert abs(sum(eligible) / len(eligible) - 0.2) < TOLERANCE


@pytest.mark.parametrize("kind", ["nickname", "transliteration", "middle_in_given"])
def test_label_only_name_noise_changes_the_given_or_family_name(
    kind: str, name_world: Callable[[str], Path]
) -> None:
    items = _rows(name_world(kind), DOB_SOURCES)
    labelled = [(row, person) for row, person, kinds in items if kind in kinds]
    assert labelled
    for row, person in labelled:
        assert (row["given_name"], row["family_name"]) != _true_names(person)
    assert all(kinds in ([], [kind]) for _, _, kinds in items)
