"""The generated world: determinism, files and columns, population, cultures, safeguards."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from synthkit import load_source

from immigrationos.synth import SOURCES, PopulationMix, WorldConfig, generate_world

FORBIDDEN = re.compile(r"race|ethnic|religio|sexual|orientation|politic|social|associat|culture")


def _digests(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_bytes_whatever_the_workers(tmp_path: Path) -> None:
    config = WorldConfig(persons=1500, seed=5, chunk_size=500)
    generate_world(config, tmp_path / "a", workers=1)
    generate_world(config, tmp_path / "b", workers=2)
    a, b = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert len(a) == 12  # 9 sources, 2 truth files, manifest
    assert a == b


def test_different_seed_changes_every_file(tmp_path: Path) -> None:
    generate_world(WorldConfig(persons=600, seed=1), tmp_path / "a")
    generate_world(WorldConfig(persons=600, seed=2), tmp_path / "b")
    a, b = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert all(a[k] != b[k] for k in a)


def test_every_source_exists_parses_and_has_the_documented_columns(default_world: Path) -> None:
    manifest = json.loads((default_world / "manifest.json").read_text())
    by_path = {f["path"]: f for f in manifest["files"]}
    for src in SOURCES:
        rows = load_source(default_world, src.name)
        assert rows, src.name
        assert list(rows[0]) == src.column_names, src.name
        entry = by_path[f"sources/{src.filename}"]
        assert entry["rows"] == len(rows)
        assert entry["bytes"] == (default_world / entry["path"]).stat().st_size


def test_manifest_has_config_noise_counts_and_digests(default_world: Path) -> None:
    manifest = json.loads((default_world / "manifest.json").read_text())
    assert manifest["config"]["persons"] == 5000
    assert manifest["config"]["noise"]["typo"] == 0.03
    assert sum(manifest["counts"]["category"].values()) == 5000
    for f in manifest["files"]:
        digest = hashlib.sha256((default_world / f["path"]).read_bytes()).hexdigest()
        assert f["sha256"] == digest


def test_departure_stream_is_time_ordered(default_world: Path) -> None:
    rows = load_source(default_world, "departures")
    keys = [(r["occurred_at"], r["event_id"]) for r in rows]
    assert keys == sorted(keys)
    assert {r["channel"] for r in rows} == {"manifest", "land_exit", "self_report"}
    assert all(r["occurred_at"].endswith("Z") for r in rows)
    assert all(r["reported_at"] for r in rows if r["channel"] == "self_report")
    assert not any(r["port"] for r in rows if r["channel"] == "self_report")


def test_self_reports_are_mostly_but_not_always_confirmed(default_world: Path) -> None:
    rows = load_source(default_world, "departures")
    truth = {
        (r["record_key"]): r["person_id"]
        for r in pq.read_table(default_world / "truth/records.parquet").to_pylist()
    }
    verified = {truth[r["event_id"]] for r in rows if r["channel"] != "self_report"}
    reporters = [truth[r["event_id"]] for r in rows if r["channel"] == "self_report"]
    confirmed = sum(p in verified for p in reporters) / len(reporters)
    assert 0.6 < confirmed < 1.0


def test_no_source_column_names_culture_or_sensitive_traits(default_world: Path) -> None:
    cultures = set(
        pq.read_table(default_world / "truth/persons.parquet").column("name_culture").to_pylist()
    )
    for src in SOURCES:
        rows = load_source(default_world, src.name)
        assert not [c for c in rows[0] if FORBIDDEN.search(c)], src.name
        for column in rows[0]:
            values = {r[column] for r in rows[:500] if isinstance(r[column], str)}
            assert not values & cultures, (src.name, column)


def test_at_least_eight_name_cultures_with_plausible_nationalities(default_world: Path) -> None:
    persons = pq.read_table(default_world / "truth/persons.parquet").to_pylist()
    assert len({p["name_culture"] for p in persons}) >= 8
    origins = Counter(p["birth_country"] for p in persons if p["name_culture"] == "vietnamese")
    assert set(origins) <= {"VNM", "USA"}
    hispanic = Counter(p["birth_country"] for p in persons if p["name_culture"] == "hispanic")
    assert hispanic.most_common(1)[0][0] in {"MEX", "USA"}


def test_population_categories_match_the_configured_shares(default_world: Path) -> None:
    persons = pq.read_table(default_world / "truth/persons.parquet").column("category").to_pylist()
    counts = Counter(persons)
    for category, share in PopulationMix().shares().items():
        assert abs(counts[category] / len(persons) - share) < 0.02, category


def test_common_names_are_common(default_world: Path) -> None:
    persons = pq.read_table(default_world / "truth/persons.parquet").to_pylist()
    viet = Counter(p["family_name"] for p in persons if p["name_culture"] == "vietnamese")
    top, count = viet.most_common(1)[0]
    assert top == "Nguyễn" and count / sum(viet.values()) > 0.25


def test_naturalized_citizens_keep_their_old_immigration_records(default_world: Path) -> None:
    persons = pq.read_table(default_world / "truth/persons.parquet").to_pylist()
    naturalized = {p["person_id"] for p in persons if p["category"] == "citizen_naturalized"}
    records = pq.read_table(default_world / "truth/records.parquet").to_pylist()
    sources_of: dict[str, set[str]] = {}
    for r in records:
        sources_of.setdefault(r["person_id"], set()).add(r["source"])
    assert all(
        {"arrivals", "benefits", "citizenship_evidence"} <= sources_of[p] for p in naturalized
    )
    assert all(p["a_numbers"] and p["citizen"] for p in persons if p["person_id"] in naturalized)


def test_some_persons_have_two_court_cases(default_world: Path) -> None:
    records = pq.read_table(default_world / "truth/records.parquet").to_pylist()
    cases = Counter(r["person_id"] for r in records if r["source"] == "court")
    assert any(n >= 2 for n in cases.values())
    court = load_source(default_world, "court")
    decisions = {pr["decision"]["type"] for c in court for pr in c["proceedings"] if pr["decision"]}
    assert {
        "removal-ordered",
        "in-absentia",
        "voluntary-departure",
        "withholding-granted",
    } <= decisions
    assert any(c["proceedings"][0]["appeal"] for c in court)


def test_tax_addresses_have_mail_drops_and_placeholder_names(doc_world: Path) -> None:
    rows = load_source(doc_world, "tax_addresses")
    per_address = Counter((r["address_line"], r["city"], r["state"]) for r in rows)
    assert max(per_address.values()) > 20
    assert any(r["given_name"] == "NA" and r["family_name"] == "NA" for r in rows)


def test_identifier_formats(default_world: Path) -> None:
    arrivals = load_source(default_world, "arrivals")
    assert all(re.fullmatch(r"\d{11}", r["admission_no"]) for r in arrivals)
    benefits = load_source(default_world, "benefits")
    assert all(re.fullmatch(r"[A-Z]{3}\d{10}", r["receipt_no"]) for r in benefits)
    assert all(re.fullmatch(r"A\d{8,9}", r["a_number"]) for r in benefits if r["a_number"])
    tax = load_source(default_world, "tax_addresses")
    assert all(re.fullmatch(r"9\d\d-[78]\d-\d{4}", r["itin"]) for r in tax)
    assert len({r["admission_no"] for r in arrivals}) == len(arrivals)


def test_invalid_population_shares_are_refused() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        PopulationMix(lpr=0.5)
