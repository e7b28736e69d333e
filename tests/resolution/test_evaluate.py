"""Scores of a predicted clustering against the truth: hand-computed cases, properties, files."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from immigrationos.core.errors import ValidationFailed
from immigrationos.resolution.evaluate import Evaluation, Truth, evaluate, load_truth

# Three persons: A has records 1-3, B has 4-5, C has 6 alone.
TRUTH = Truth.from_columns(
    ["r1", "r2", "r3", "r4", "r5", "r6"],
    ["A", "A", "A", "B", "B", "C"],
    ["x", "x", "x", "y", "y", "y"],
)


def _score(labels: str) -> Evaluation:
    """Predicted cluster per record r1..r6 given as one character each."""
    return evaluate({f"r{i + 1}": c for i, c in enumerate(labels)}, TRUTH)


def test_perfect_prediction_scores_one_everywhere() -> None:
    e = _score("aaabbc")
    assert (e.pairwise_precision, e.pairwise_recall, e.pairwise_f1) == (1.0, 1.0, 1.0)
    assert (e.bcubed_precision, e.bcubed_recall, e.bcubed_f1) == (1.0, 1.0, 1.0)
    assert (e.true_pairs, e.predicted_pairs, e.correct_pairs) == (4, 4, 4)
    assert e.false_merge_pairs == e.false_split_pairs == 0
    assert e.merged_clusters == e.split_entities == 0
    assert e.false_merge_records == e.false_split_records == 0
    assert e.culture_false_merge_ratio == 1.0


def test_one_false_merge() -> None:
    e = _score("aaabba")  # C's lone record joins A's cluster
    assert (e.predicted_pairs, e.correct_pairs, e.false_merge_pairs) == (7, 4, 3)
    assert e.pairwise_precision == pytest.approx(4 / 7)
    assert e.pairwise_recall == 1.0
    assert e.pairwise_f1 == pytest.approx(2 * (4 / 7) / (1 + 4 / 7))
    # B-cubed precision: A's records 3/4 each, r6 1/4, B's 1 each -> (9/4 + 1/4 + 2) / 6.
    assert e.bcubed_precision == pytest.approx((9 / 4 + 1 / 4 + 2) / 6)
    assert e.bcubed_recall == 1.0
    assert (e.merged_clusters, e.split_entities) == (1, 0)
    assert (e.false_merge_records, e.false_split_records) == (4, 0)
    rates = {c.culture: c.false_merge_rate for c in e.cultures}
    assert rates == {"x": 1.0, "y": pytest.approx(1 / 3)}
    assert e.culture_false_merge_ratio == pytest.approx(3.0)


def test_one_false_split() -> None:
    e = _score("aabccd")  # r3 split off from A
    assert (e.true_pairs, e.correct_pairs, e.false_split_pairs) == (4, 2, 2)
    assert e.pairwise_precision == 1.0
    assert e.pairwise_recall == pytest.approx(0.5)
    # B-cubed recall: r1, r2 2/3 each, r3 1/3, others 1 -> (4/3 + 1/3 + 3) / 6.
    assert e.bcubed_recall == pytest.approx((4 / 3 + 1 / 3 + 3) / 6)
    assert (e.merged_clusters, e.split_entities) == (0, 1)
    assert (e.false_merge_records, e.false_split_records) == (0, 3)
    assert e.false_split_rate == pytest.approx(0.5)
    # No culture has a merge: the ratio is parity, not 0/0.
    assert e.culture_false_merge_ratio == 1.0


def test_all_singletons() -> None:
    e = _score("abcdef")
    assert e.predicted_pairs == 0
    assert e.pairwise_precision == 1.0  # nothing claimed, nothing wrong
    assert e.pairwise_recall == 0.0
    assert e.pairwise_f1 == 0.0
    assert e.bcubed_precision == 1.0
    assert e.bcubed_recall == pytest.approx((3 * 1 / 3 + 2 * 1 / 2 + 1) / 6)
    assert (e.split_entities, e.false_split_records) == (2, 5)


def test_singleton_truth_with_perfect_prediction() -> None:
    truth = Truth.from_columns(["a", "b"], ["1", "2"])
    e = evaluate({"a": "x", "b": "y"}, truth)
    assert (e.pairwise_f1, e.bcubed_f1) == (1.0, 1.0)
    assert e.cultures == ()
    assert e.culture_false_merge_ratio is None


def test_keys_on_one_side_only_are_counted_not_scored() -> None:
    e = evaluate({"r1": "a", "r2": "a", "zz": "a"}, TRUTH)
    assert (e.records, e.only_in_predicted, e.only_in_truth) == (2, 1, 4)
    assert e.pairwise_f1 == 1.0


def test_best_culture_rate_is_floored_at_one_over_its_records() -> None:
    truth = Truth.from_columns(
        ["x1", "x2", "y1", "y2", "y3", "y4"],
        ["P", "Q", "R", "S", "T", "U"],
        ["x", "x", "y", "y", "y", "y"],
    )
    e = evaluate({"x1": "c", "x2": "c", "y1": "1", "y2": "2", "y3": "3", "y4": "4"}, truth)
    assert e.culture_false_merge_ratio == pytest.approx(1.0 / (1 / 4))


def test_reports_render_and_serialise() -> None:
    e = _score("aaabba")
    console = Console(record=True, width=120)
    console.print(e.table(), e.culture_table())
    text = console.export_text()
    assert "pairwise precision" in text and "false-merge rate" in text
    data = json.loads(json.dumps(e.to_json()))
    assert data["false_merge_pairs"] == 3
    assert {c["culture"] for c in data["cultures"]} == {"x", "y"}


# --- properties ---------------------------------------------------------------------------

labelings = st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, 5), st.sampled_from("pq")), max_size=30
)


def _from_labels(rows: list[tuple[int, int, str]]) -> tuple[dict[str, str], Truth]:
    keys = [f"k{i}" for i in range(len(rows))]
    predicted = {k: f"c{p}" for k, (p, _, _) in zip(keys, rows, strict=True)}
    truth = Truth.from_columns(keys, [f"e{t}" for _, t, _ in rows], [c for _, _, c in rows])
    return predicted, truth


@settings(max_examples=150, deadline=None)
@given(labelings)
def test_scores_are_in_unit_interval(rows: list[tuple[int, int, str]]) -> None:
    e = evaluate(*_from_labels(rows))
    for name in ("pairwise_precision", "pairwise_recall", "pairwise_f1", "bcubed_precision"):
        assert 0.0 <= getattr(e, name) <= 1.0
    for name in ("bcubed_recall", "bcubed_f1", "false_merge_rate", "false_split_rate"):
        assert 0.0 <= getattr(e, name) <= 1.0 + 1e-12


@settings(max_examples=100, deadline=None)
@given(labelings)
def test_predicting_the_truth_is_perfect(rows: list[tuple[int, int, str]]) -> None:
    _, truth = _from_labels(rows)
    e = evaluate(dict(truth.entity_of), truth)
    assert (e.pairwise_precision, e.pairwise_recall, e.pairwise_f1) == (1.0, 1.0, 1.0)
    assert e.bcubed_precision == pytest.approx(1.0) and e.bcubed_recall == pytest.approx(1.0)
    assert e.false_merge_pairs == e.false_split_pairs == 0
    assert e.merged_clusters == e.split_entities == 0
    assert e.false_merge_records == e.false_split_records == 0


@settings(max_examples=100, deadline=None)
@given(labelings, st.randoms(use_true_random=False))
def test_relabelling_clusters_changes_nothing(
    rows: list[tuple[int, int, str]], rnd: random.Random
) -> None:
    predicted, truth = _from_labels(rows)
    names = sorted(set(predicted.values()))
    renamed = dict(zip(names, rnd.sample(range(1000), len(names)), strict=True))
    relabelled = {k: f"z{renamed[c]}" for k, c in predicted.items()}
    assert evaluate(relabelled, truth).to_json() == evaluate(predicted, truth).to_json()


@settings(max_examples=150, deadline=None)
@given(labelings)
def test_pair_counts_agree_with_enumeration(rows: list[tuple[int, int, str]]) -> None:
    predicted, truth = _from_labels(rows)
    e = evaluate(predicted, truth)
    together = [
        (predicted[a] == predicted[b], truth.entity_of[a] == truth.entity_of[b])
        for a, b in itertools.combinations(predicted, 2)
    ]
    assert e.predicted_pairs == sum(p for p, _ in together)
    assert e.true_pairs == sum(t for _, t in together)
    assert e.correct_pairs == sum(p and t for p, t in together)
    assert e.false_merge_pairs == sum(p and not t for p, t in together)
    assert e.false_split_pairs == sum(t and not p for p, t in together)


@settings(max_examples=100, deadline=None)
@given(labelings)
def test_record_flags_agree_with_enumeration(rows: list[tuple[int, int, str]]) -> None:
    predicted, truth = _from_labels(rows)
    e = evaluate(predicted, truth)
    ent = truth.entity_of
    merged = [any(predicted[o] == predicted[k] and ent[o] != ent[k] for o in ent) for k in ent]
    split = [any(ent[o] == ent[k] and predicted[o] != predicted[k] for o in ent) for k in ent]
    assert e.false_merge_records == sum(merged)
    assert e.false_split_records == sum(split)


# --- truth files --------------------------------------------------------------------------

ROWS = {
    "source": ["arrivals", "arrivals", "visas"],
    "record_key": ["007", "008", "V1"],
    "person_id": ["P1", "P1", "P2"],
    "name_culture": ["anglo", "anglo", "hispanic"],
}


def _write(path: Path, rows: dict[str, list[str]]) -> Path:
    table = pa.table(rows)
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    elif path.suffix == ".csv":
        lines = [",".join(rows)] + [",".join(r) for r in zip(*rows.values(), strict=True)]
        path.write_text("\n".join(lines) + "\n")
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in table.to_pylist()))
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_load_truth_in_each_format(tmp_path: Path, suffix: str) -> None:
    truth = load_truth(_write(tmp_path / f"truth{suffix}", ROWS))
    assert dict(truth.entity_of) == {"arrivals:007": "P1", "arrivals:008": "P1", "visas:V1": "P2"}
    assert truth.culture_of["visas:V1"] == "hispanic"


@pytest.mark.parametrize(("key", "entity"), [("key", "cluster_id"), ("unique_id", "entity_id")])
def test_load_truth_accepts_aliases_without_source(tmp_path: Path, key: str, entity: str) -> None:
    path = _write(tmp_path / "t.csv", {key: ["1", "2"], entity: ["E", "E"]})
    truth = load_truth(path)
    assert dict(truth.entity_of) == {"1": "E", "2": "E"}
    assert dict(truth.culture_of) == {}


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.parquet", {"record_key": ["1"], "who": ["E"]})
    with pytest.raises(ValidationFailed, match=r"t\.parquet.*missing column 'entity_id'"):
        load_truth(path)


def test_duplicate_key_is_named(tmp_path: Path) -> None:
    rows = {"source": ["a", "a"], "record_key": ["1", "1"], "entity_id": ["E", "F"]}
    with pytest.raises(ValidationFailed, match=r"t\.jsonl.*duplicate record key.*'a:1'"):
        load_truth(_write(tmp_path / "t.jsonl", rows))


def test_empty_entity_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("record_key,entity_id\n1,E\n2,\n")
    with pytest.raises(ValidationFailed, match=r"t\.csv.*entity id is empty.*'2'"):
        load_truth(path)


def test_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match=r"unknown truth file type '\.xlsx'"):
        load_truth(tmp_path / "t.xlsx")
    with pytest.raises(ValidationFailed, match="no such truth file"):
        load_truth(tmp_path / "absent.csv")


def test_unreadable_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    path.write_text("not parquet")
    with pytest.raises(ValidationFailed, match=r"t\.parquet: cannot read truth file"):
        load_truth(path)
