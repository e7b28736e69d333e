"""Scoring one record against many at once (arrays), or pair by pair on rows read back from
the index's columns, gives what scoring each pair of feature rows in Python gives: the same
level of every comparison, the same adjustments, the same weight to the bit, for rows in the
columns as built and as appended later; and the index ranks persons as a pair-by-pair scan
of the feature rows would, whatever the number of candidates."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from immigrationos.resolution import held_apart, incremental
from immigrationos.resolution import model as model_module
from immigrationos.resolution.columns import Candidates, FeatureColumns, value_hash
from immigrationos.resolution.comparisons import COMPARISONS, JaroWinklerAtLeast, Lefts, distinct
from immigrationos.resolution.incremental import LinkIndex, TermFrequencies
from immigrationos.resolution.model import ModelDoc, Parameters
from immigrationos.resolution.records import FEATURE_SCHEMA, feature_row
from immigrationos.resolution.service import shipped_model

GIVEN = ["José", "Jose Luis", "Pepe", "Mohammed", "Muhammad", "Hassan", "Hussein", "FNU", None,
         "Xiao Ming", "Xiaoming", "Garcia", "Aleksandr", "Alexander", "Sasha", "Jos",
         "Joseph"]  # fmt: skip
FAMILY = ["García López", "Garcia", "López", "de la Cruz", "Al-Hassan", "Zhang", "Chang",
          "Nguyen", "Jose", "Garsia", None, "Ivanov", "Lopez Garcia"]  # fmt: skip
DATES = ["1980-05-04", "1980-04-05", "1980-01-01", "1981-05-04", "1980-05-14", "1900-01-01",
         "1979-05-04", None, "not a date"]  # fmt: skip
CHOICES: dict[str, list[Any]] = {
    "given_name": GIVEN,
    "family_name": FAMILY,
    "middle_name": [None, None, "Luis"],
    "birth_date": DATES,
    "sex": ["M", "F", None],
    "nationality": ["MEX", "SYR", None],
    "a_number": ["A123456789", "A123456788", "A12345678", "A987654321", None],
    "passport_no": ["X1234567", "X1234568", None],
    "passport_country": ["MEX", "USA", None],
    "fin": ["1234567890", None],
    "itin": ["900-70-1234", None, None],
    "national_id": ["CURP123", None, None],
    "other_ids": [[], ["state_id:NY1"], ["state_id:NY2", "dl:9"]],
}


def _rows(count: int, seed: int, prefix: str) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        feature_row({"unique_id": f"{prefix}{n}", **{k: rng.choice(v) for k, v in CHOICES.items()}})
        for n in range(count)
    ]


@pytest.fixture(scope="module")
def doc() -> ModelDoc:
    return shipped_model()


@pytest.mark.parametrize("scored", [300, 40], ids=["many", "few"])
@pytest.mark.parametrize("appended", [0, 120], ids=["built", "appended"])
def test_array_scores_equal_pair_scores(doc: ModelDoc, appended: int, scored: int) -> None:
    """300 candidates evaluate each distinct value once, 40 each row."""
    rows = _rows(300, seed=appended + 1, prefix="r")
    table = pa.Table.from_pylist(rows[: len(rows) - appended], schema=FEATURE_SCHEMA)
    columns = FeatureColumns(table)
    for row in rows[len(rows) - appended :]:
        columns.append(row)
    params = Parameters(doc)
    tf = {c: TermFrequencies.of(table.column(c)) for c in ("given", "family")}
    rows = rows[len(rows) - scored :]  # the appended rows among them
    candidates = Candidates(columns, np.arange(300 - scored, 300, dtype=np.int64))
    stored = columns.rows(np.arange(300 - scored, 300, dtype=np.int64))
    for left in _rows(60, seed=99, prefix="l"):
        scores = params.score_many(left, candidates, tf)
        mine = columns.stored(left)
        for pair, right in enumerate(rows):
            expected = params.score(left, right, tf)
            assert scores.score(pair) == expected, (left, right)
            assert params.score(mine, stored[pair], tf) == expected, (left, right)


#: The identifiers a departure event never carries.
UNCARRIED = {"a_number": None, "fin": None, "itin": None, "national_id": None, "other_ids": []}


@pytest.mark.parametrize("lacking", [False, True], ids=["mixed", "no-identifiers"])
@pytest.mark.parametrize("appended", [0, 120], ids=["built", "appended"])
def test_pairs_of_many_records_score_as_each_record_alone(
    doc: ModelDoc, appended: int, lacking: bool
) -> None:
    """A batch of records, each against its own candidates (some none, some one, some
    hundreds), scores every pair as that record scored alone against its candidates; also
    when no record of the batch has an A-number, FIN, ITIN, national id or other id (as a
    batch of departures), where those comparisons stop at their null level at once."""
    rows = _rows(300, seed=appended + 3, prefix="r")
    table = pa.Table.from_pylist(rows[: len(rows) - appended], schema=FEATURE_SCHEMA)
    columns = FeatureColumns(table)
    for row in rows[len(rows) - appended :]:
        columns.append(row)
    params = Parameters(doc)
    tf = {c: TermFrequencies.of(table.column(c)) for c in ("given", "family")}
    rng = random.Random(appended)
    lefts = _rows(40, seed=11, prefix="l")
    if lacking:
        lefts = [{**left, **UNCARRIED} for left in lefts]
    chosen = [sorted(rng.sample(range(300), rng.choice([0, 1, 3, 40, 299]))) for _ in lefts]
    of = np.array([i for i, c in enumerate(chosen) for _ in c], dtype=np.intp)
    flat = np.array([n for c in chosen for n in c], dtype=np.int64)
    scores = params.score_pairs(Lefts(lefts, of, value_hash), Candidates(columns, flat), tf)
    pair = 0
    for left, numbers in zip(lefts, chosen, strict=True):
        if not numbers:
            continue
        alone = params.score_many(left, Candidates(columns, np.array(numbers)), tf)
        for n in range(len(numbers)):
            assert scores.weights[pair] == alone.weights[n], (left, rows[numbers[n]])
            assert scores.score(pair) == alone.score(n)
            assert scores.score(pair) == params.score(left, rows[numbers[n]], tf)
            pair += 1
    assert pair == len(flat)


def _held_apart(index: LinkIndex, left: Mapping[str, Any], right: dict[str, Any],
                members: list[dict[str, Any]]) -> float:  # fmt: skip
    """The group check's penalty of a pair, written plainly: each trait the new record holds
    and its partner lacks, held by the partner's person with none of its values."""

    def value(row: Mapping[str, Any], column: str) -> Any:
        return None if column == "dob" and row.get("dob_default") else row.get(column)

    penalty = 0.0
    for _, column, weight in index._group.traits:
        mine = value(left, column)
        if mine is None or value(right, column) is not None:
            continue
        held = {value(m, column) for m in members} - {None}
        if held and mine not in held:
            penalty += weight
    return penalty


@pytest.mark.parametrize("few", [0, 10**6], ids=["check as arrays", "check in Python"])
def test_index_ranks_persons_as_a_pair_by_pair_scan(
    doc: ModelDoc, few: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ranking as arrays equals a scan of every pair, group check included (rows and persons
    drawn at random, so persons' records disagree and the check often applies), whichever
    way the check goes."""
    monkeypatch.setattr(held_apart, "FEW", few)
    rows = _rows(400, seed=5, prefix="r")
    person_of = {r["unique_id"]: f"p{n % 90:03d}" for n, r in enumerate(rows)}
    members: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        members.setdefault(person_of[r["unique_id"]], []).append(r)
    index = LinkIndex.build(pa.Table.from_pylist(rows, schema=FEATURE_SCHEMA), person_of, doc)
    penalised = 0
    lefts: list[Mapping[str, Any]] = list(_rows(40, seed=7, prefix="l"))
    together = index.rank_many(lefts, index.candidates_many(lefts))
    for left, in_batch in zip(lefts, together, strict=True):
        numbers, _ = index.candidates(left)
        ranked = index.rank(left, numbers)
        assert list(in_batch.weights) == list(ranked.weights)
        assert in_batch.leaders == ranked.leaders
        best: dict[str, tuple[float, str]] = {}
        for n in numbers.tolist():
            weight = index.params.score(left, rows[n], index.tf).match_weight
            person = person_of[rows[n]["unique_id"]]
            if weight >= doc.review_weight:
                penalty = _held_apart(index, left, rows[n], members[person])
                penalised += penalty < 0
                weight += penalty
            if person not in best or weight > best[person][0]:
                best[person] = (weight, rows[n]["unique_id"])
        scan = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))
        assert list(ranked.weights) == [w for _, (w, _) in scan]
        leaders = [(c.person_id, c.record_id, c.score.match_weight) for c in ranked.leaders]
        assert leaders == [(p, r, w) for p, (w, r) in scan[: len(leaders)]]
        if ranked.top:
            top = index.params.score(left, rows[index.row_of(ranked.top.record_id) or 0], index.tf)
            count = len(top.contributions)
            assert ranked.top.score.contributions[:count] == top.contributions
            assert ranked.top.score.match_weight == scan[0][1][0]
    assert penalised > 20


def test_a_pairs_bound_is_never_below_its_weight(doc: ModelDoc) -> None:
    """``Parameters.bounds`` is every pair's weight with each name comparison raised to its
    best level for the left record (the exact level with the record's own term-frequency
    adjustment, or the best other level), so never below the weight; each comparison's
    weight found without stacking its masks (``pair_weights``) is that of the level
    ``score_pairs`` finds; it reads none of the names' columns."""
    params = Parameters(doc)
    rows = _rows(300, seed=11, prefix="r")
    lefts: list[Mapping[str, Any]] = list(_rows(30, seed=12, prefix="l"))
    columns = FeatureColumns(pa.Table.from_pylist(rows, schema=FEATURE_SCHEMA))
    tf = {
        c: TermFrequencies.of(pa.chunked_array([[r[c] for r in rows]])) for c in ("given", "family")
    }
    of = np.repeat(np.arange(len(lefts), dtype=np.intp), len(rows))
    numbers = np.tile(np.arange(len(rows), dtype=np.int64), len(lefts))
    bound = params.bounds(Lefts(lefts, of, value_hash), Candidates(columns, numbers), tf)
    # Reading only the columns after the names' (as the index's pruning does) bounds the same.
    after_names = Candidates(columns, numbers, first="dob")
    assert np.array_equal(params.bounds(Lefts(lefts, of, value_hash), after_names, tf), bound)
    with pytest.raises(KeyError):
        after_names.hashes("given")
    scored = params.score_pairs(Lefts(lefts, of, value_hash), Candidates(columns, numbers), tf)
    raised = scored.weights.copy()
    for i, comparison in enumerate(COMPARISONS):
        if comparison.name not in ("given_name", "family_name"):
            continue
        best = []
        for left in lefts:
            found = []
            for k, level in enumerate(comparison.levels):
                f = tf[level.tf].get(left.get(level.tf) or "", 0.0) if level.tf else 0.0
                adjustment = math.log2(params.u_values[i][k]) - math.log2(f) if f else 0.0
                found.append(params.weights[i][k] + adjustment)
            best.append(max(found))
        actual = np.array(params.weights[i])[scored.levels[i]] + scored.adjustments.get(i, 0.0)
        raised += np.array(best)[of] - actual
    assert (scored.weights <= bound + 1e-9).all()
    assert np.allclose(bound, raised, rtol=0, atol=1e-9)
    assert (bound - scored.weights > 1).mean() > 0.5  # a bound, not the weight
    lefts_again = Lefts(lefts, of, value_hash)
    right = Candidates(columns, numbers)
    for i, comparison in enumerate(COMPARISONS):
        found_weights = comparison.pair_weights(lefts_again, right, params.weights[i])
        expected = np.array(params.weights[i])[scored.levels[i]]
        assert (found_weights == expected).all(), comparison.name


def test_pruned_candidates_change_no_decision(
    doc: ModelDoc, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Left unscored, the candidates that cannot reach the review weight change no band, no
    person and no weight of a decision that has a person; the explanation counts them among
    the candidates, names the same persons from the review weight up, and a record decides
    alone as in a batch."""
    rows = _rows(600, seed=21, prefix="r")
    person_of = {r["unique_id"]: f"p{n % 150:03d}" for n, r in enumerate(rows)}
    index = LinkIndex.build(pa.Table.from_pylist(rows, schema=FEATURE_SCHEMA), person_of, doc)
    probes: list[Mapping[str, Any]] = list(_rows(120, seed=22, prefix="n"))
    probes += [{**r, "unique_id": f"copy{n}"} for n, r in enumerate(rows[:40])]
    monkeypatch.setattr(incremental, "PRUNE_ABOVE", 10**9)
    everything = index.link_many(probes)
    monkeypatch.setattr(incremental, "PRUNE_ABOVE", 0)
    pruned = index.link_many(probes)
    alone = [index.link_features(p) for p in probes]
    left_out = [d.explanation["pruned"] for d in pruned]
    assert sum(left_out) > 1000 and all(d.explanation["pruned"] == 0 for d in everything)
    assert {d.band for d in pruned} == {"linked", "review", "new"}
    for full, cut, one in zip(everything, pruned, alone, strict=True):
        assert (cut.band, cut.person_id) == (full.band, full.person_id)
        if cut.band != "new":
            assert cut.match_weight == full.match_weight
        assert cut.explanation["candidates"] == full.explanation["candidates"]
        considered = cut.explanation["persons_considered"]
        assert considered <= full.explanation["persons_considered"]
        named = [
            [p for p in d.explanation["persons"] if p["match_weight"] >= doc.review_weight]
            for d in (cut, full)
        ]
        assert named[0] == named[1]
        shared = ("timing_ms", "batch")
        assert {k: v for k, v in one.explanation.items() if k not in shared} == {
            k: v for k, v in cut.explanation.items() if k not in shared
        }


@pytest.mark.parametrize("size", [0, 1, 2, 5_000])
@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_distinct_is_numpys_unique(size: int, dtype: type[np.integer[Any]]) -> None:
    """``comparisons.distinct`` (a sort and a comparison of neighbours) gives ``np.unique``'s
    values and order, duplicates and the largest values included."""
    rng = np.random.default_rng(size)
    values = rng.integers(0, 1 << 62, size, dtype=np.int64).astype(dtype)
    if size > 2:
        values[: size // 3] = values[size // 3 : 2 * (size // 3)]  # duplicates
        values[-1] = np.iinfo(dtype).max
    found = distinct(values)
    assert found.dtype == values.dtype
    assert found.tolist() == np.unique(values).tolist()


def test_no_bound_for_a_frequency_level_on_unequal_values(
    doc: ModelDoc, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A term-frequency level on other than equal values would weigh by the other side's
    value, which the bound does not see: bounding such a model is refused, not guessed."""
    params = Parameters(doc)
    given = COMPARISONS[0]
    levels = tuple(
        dataclasses.replace(level, expr=JaroWinklerAtLeast("given", 0.8)) if level.tf else level
        for level in given.levels
    )
    changed = (dataclasses.replace(given, levels=levels), *COMPARISONS[1:])
    monkeypatch.setattr(model_module, "COMPARISONS", changed)
    rows = _rows(5, seed=31, prefix="r")
    columns = FeatureColumns(pa.Table.from_pylist(rows, schema=FEATURE_SCHEMA))
    of = np.zeros(len(rows), dtype=np.intp)
    numbers = np.arange(len(rows), dtype=np.int64)
    with pytest.raises(ValueError, match="given_name: level 'exact' adjusts for term frequency"):
        params.bounds(Lefts(rows[:1], of, value_hash), Candidates(columns, numbers), {})
