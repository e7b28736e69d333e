"""Incremental linking on a small synthetic world, with a model trained on that world."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pytest
from benchmarks._resolution_peers import world_records

from immigrationos.resolution.evaluate import Truth
from immigrationos.resolution.incremental import (
    Candidate,
    LinkDecision,
    LinkIndex,
    Probe,
    band_of,
    parse_rule,
)
from immigrationos.resolution.linking import duckdb_backend, predict
from immigrationos.resolution.model import ModelDoc, Parameters, Score, term_frequencies
from immigrationos.resolution.records import feature_row, features
from immigrationos.resolution.service import shipped_model
from immigrationos.synth import NoiseConfig, WorldConfig, generate_world

World = tuple[pa.Table, pa.Table, Truth]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """Raw records, their features and the truth of a 350-person world (default noise)."""
    folder: Path = tmp_path_factory.mktemp("incremental-world")
    generate_world(WorldConfig(persons=350, seed=33, noise=NoiseConfig()), folder)
    raw, truth = world_records(folder)
    return raw, features(raw), truth


@pytest.fixture(scope="module")
def doc() -> ModelDoc:
    """The shipped model: ``linking.train`` on a world this small stops in Splink's EM (an m
    probability reaches 0.0, which Splink 5 refuses), and training would take most of the
    module's time budget anyway."""
    return shipped_model()


@pytest.fixture(scope="module")
def pairs(world: World, doc: ModelDoc) -> pa.Table:
    """Every pair Splink's ``predict`` blocks and scores on the whole world."""
    return predict(world[1], doc, duckdb_backend(), min_weight=-1000.0)


def _split(world: World, held: set[str]) -> tuple[pa.Table, list[dict[str, object]]]:
    """Features of the records not held out, and the raw rows of those held out."""
    raw, feats, _ = world
    keep = pa.array([u not in held for u in feats.column("unique_id").to_pylist()])
    rows = [r for r in raw.to_pylist() if r["unique_id"] in held]
    return feats.filter(keep), rows


def _members(truth: Truth) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for record, person in sorted(truth.entity_of.items()):
        out[person].append(record)
    return out


def test_held_out_records_link_to_their_person(world: World, doc: ModelDoc) -> None:
    truth = world[2]
    held = {records[-1] for records in _members(truth).values() if len(records) >= 3}
    kept, rows = _split(world, held)
    index = LinkIndex.build(kept, truth.entity_of, doc)
    decisions = [index.link(r) for r in rows]
    right = sum(
        d.band == "linked" and d.person_id == truth.entity_of[r["unique_id"]]  # type: ignore[index]
        for d, r in zip(decisions, rows, strict=True)
    )
    wrong = sum(
        d.band == "linked" and d.person_id != truth.entity_of[r["unique_id"]]  # type: ignore[index]
        for d, r in zip(decisions, rows, strict=True)
    )
    assert len(rows) > 100
    assert right >= 0.85 * len(rows)
    assert wrong <= 0.02 * len(rows)


def test_record_of_an_unknown_person_is_new(world: World, doc: ModelDoc) -> None:
    truth = world[2]
    absent = {p: rs for i, (p, rs) in enumerate(sorted(_members(truth).items())) if i % 7 == 0}
    held = {r for rs in absent.values() for r in rs}
    kept, rows = _split(world, held)
    index = LinkIndex.build(kept, truth.entity_of, doc)
    decisions = [index.link(r) for r in rows]
    new = [d for d in decisions if d.band == "new"]
    assert len(new) >= 0.9 * len(rows)
    assert all(d.person_id.startswith("per") and d.person_id not in absent for d in new)


def _same(decision: LinkDecision) -> tuple[object, ...]:
    """A decision without its timings (which a batch shares), its weight unrounded."""
    out = decision.to_json()
    shared = ("timing_ms", "batch")
    explanation = {k: v for k, v in out["explanation"].items() if k not in shared}
    return decision.match_weight, decision.probability, out["band"], out["person_id"], explanation


def test_records_linked_together_decide_as_each_alone(world: World, doc: ModelDoc) -> None:
    """Held-out records of known persons, records of unknown persons, records added after the
    build, a record with no usable key, and one that is in the index itself: a batch decides
    each exactly as it alone is decided (bands, persons, weights to the bit, explanations)."""
    truth = world[2]
    members = sorted(_members(truth).items())
    held = {rs[-1] for _, rs in members if len(rs) >= 2}
    held |= {r for i, (_, rs) in enumerate(members) if i % 9 == 0 for r in rs}
    kept, rows = _split(world, held)
    index = LinkIndex.build(kept, truth.entity_of, doc)
    for row in rows[:15]:  # added after the build: found through the blocks' added keys
        index.add(str(row["unique_id"]), feature_row(row), truth.entity_of[str(row["unique_id"])])
    probes = [feature_row(r) for r in rows[15:]]
    probes.append(feature_row({"unique_id": "nothing-known"}))
    probes.append(feature_row(rows[0]))  # in the index: its own row is left out
    probes.append(feature_row({**rows[1], "unique_id": "copy"}))
    alone = [index.link_features(p) for p in probes]
    together = index.link_many(probes)
    assert len(probes) > 100 and {d.band for d in alone} == {"linked", "review", "new"}
    assert [_same(d) for d in together] == [_same(d) for d in alone]
    assert all(d.explanation["batch"] == len(probes) for d in together)
    assert index.link_many([]) == []


def test_added_record_is_found_by_the_next_link(world: World, doc: ModelDoc) -> None:
    raw, _, truth = world
    first = raw.to_pylist()[0]
    held = set(_members(truth)[truth.entity_of[first["unique_id"]]])
    kept, _ = _split(world, held)
    index = LinkIndex.build(kept, truth.entity_of, doc)
    decision = index.link(first)
    assert decision.band == "new"
    index.add(first["unique_id"], feature_row(first), decision.person_id)
    assert first["unique_id"] in index and index.person_of(first["unique_id"]) == decision.person_id
    again = index.link({**first, "unique_id": "copy-of-first"})
    assert (again.band, again.person_id) == ("linked", decision.person_id)
    assert again.explanation["partner_record_id"] == first["unique_id"]
    with pytest.raises(ValueError, match="already in the index"):
        index.add(first["unique_id"], feature_row(first), decision.person_id)


def test_records_added_together_index_as_each_alone(world: World, doc: ModelDoc) -> None:
    """``add_many`` leaves the index ``add`` one by one leaves (blocks, persons, traits, term
    frequencies, documents), so every later link decides the same; it refuses a record the
    index holds, or one given twice, before adding anything."""
    truth = world[2]
    members = sorted(_members(truth).items())
    held = {rs[-1] for _, rs in members if len(rs) >= 2}
    kept, rows = _split(world, held)
    one, many = (LinkIndex.build(kept, truth.entity_of, doc) for _ in range(2))
    added = [(str(r["unique_id"]), feature_row(r), truth.entity_of[str(r["unique_id"])])
             for r in rows[:40]]  # fmt: skip
    added.append(("unknown-person", feature_row({**rows[40], "unique_id": "x"}), "per-new"))
    for uid, row, person in added:
        one.add(uid, row, person)
    many.add_many(added)
    assert len(one) == len(many) and [many.person_of(u) for u, _, _ in added] == [
        one.person_of(u) for u, _, _ in added
    ]
    assert [b.added for b in many._blocks] == [b.added for b in one._blocks]
    assert many.tf == one.tf
    probes = [feature_row({**r, "unique_id": f"probe-{i}"}) for i, r in enumerate(rows)]
    assert [_same(d) for d in many.link_many(probes)] == [_same(d) for d in one.link_many(probes)]
    size = len(many)
    with pytest.raises(ValueError, match="already in the index"):
        many.add_many([("fresh", added[0][1], "per-new"), added[0]])
    with pytest.raises(ValueError, match="given twice"):
        many.add_many([("fresh", added[0][1], "per-new")] * 2)
    assert len(many) == size and "fresh" not in many


def test_index_blocks_every_pair_splink_blocks(
    world: World, doc: ModelDoc, pairs: pa.Table
) -> None:
    _, feats, truth = world
    index = LinkIndex.build(feats, truth.entity_of, doc)
    rows = {r["unique_id"]: r for r in feats.to_pylist()}
    row_of = {u: index.row_of(u) for u in rows}
    found = {u: set(index.candidates(r)[0].tolist()) for u, r in rows.items()}
    left, right = pairs.column("unique_id_l").to_pylist(), pairs.column("unique_id_r").to_pylist()
    assert len(left) > 500
    assert all(
        row_of[b] in found[a] and row_of[a] in found[b] for a, b in zip(left, right, strict=True)
    )


def test_python_score_agrees_with_splink_predict(
    world: World, doc: ModelDoc, pairs: pa.Table
) -> None:
    """Splink computes term frequencies over the table it predicts on; so do we here."""
    feats = world[1]
    rows = {r["unique_id"]: r for r in feats.to_pylist()}
    tf = term_frequencies(feats)
    params = Parameters(doc)
    scored = pairs.to_pylist()
    close = sum(
        abs(
            params.score(rows[p["unique_id_l"]], rows[p["unique_id_r"]], tf).match_weight
            - p["match_weight"]
        )
        < 1e-6
        for p in scored
    )
    assert len(scored) > 500 and close >= 0.99 * len(scored)


def test_decision_serialises(world: World, doc: ModelDoc) -> None:
    _, feats, truth = world
    index = LinkIndex.build(feats, truth.entity_of, doc)
    decision = index.link(world[0].to_pylist()[5])
    data = json.loads(json.dumps(decision.to_json()))
    assert data["band"] == "linked" and data["explanation"]["candidates"] >= 1
    assert {"features", "candidates", "scoring", "total"} <= set(data["explanation"]["timing_ms"])


def _candidate(person: str, weight: float) -> Candidate:
    return Candidate(person, f"r-{person}", Score(weight, ()))


@pytest.mark.parametrize(
    ("weights", "band"),
    [
        ([], "new"),
        ([-3.0, -8.0], "new"),
        ([2.0], "review"),
        ([9.0, 1.0], "linked"),
        ([9.0, 5.0], "review"),
    ],
)
def test_bands(weights: list[float], band: str) -> None:
    doc = ModelDoc(splink={}, link_weight=4.0, review_weight=0.0)
    assert band_of([_candidate(f"p{i}", w) for i, w in enumerate(weights)], doc)[0] == band


def test_rules_with_crossed_columns_probe_both_ways() -> None:
    assert parse_rule("x", "l.dob = r.dob AND l.given_first = r.family_first") == [
        Probe("x", ("dob", "family_first"), ("dob", "given_first")),
        Probe("x", ("dob", "given_first"), ("dob", "family_first")),
    ]
    assert parse_rule("y", "l.fin = r.fin") == [Probe("y", ("fin",), ("fin",))]
    with pytest.raises(ValueError, match=r"not 'l\.col = r\.col'"):
        parse_rule("z", "levenshtein(l.given, r.given) < 2")
