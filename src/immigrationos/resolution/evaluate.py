"""Score a clustering of source records against the ground truth of a synthetic world.

``evaluate(predicted, truth)`` compares a predicted clustering (record key → cluster id) with
the true one (record key → person) and reports pairwise and B-cubed precision, recall and F1,
the errors behind them (false merges, false splits) and, where the truth has a name culture,
the record-level error rates per culture.

Everything is computed from the contingency table ``n_ij`` (records in predicted cluster *i*
that belong to true entity *j*), never by enumerating pairs, so a million records score in
about a second: a cluster of size *n* holds ``C(n, 2)`` pairs, and the pairs predicted
together that are truly together are ``Σ C(n_ij, 2)``.

Conventions: a precision (or recall) whose denominator is zero — no predicted pairs (or no
true pairs) — is 1.0, since nothing was claimed (or nothing could be missed); F1 is the
harmonic mean, 0.0 when both are 0. Only keys present on both sides are scored; keys found on
one side only are counted and reported, never guessed.

The metrics, and why several: pairwise scores weigh big clusters quadratically (one wrong
merge of two 50-record persons costs 2,500 pairs), B-cubed weighs every record once; the
record-level rates answer the operational questions "how many records sit in a person
together with someone else's record" (false merge) and "how many records miss some of their
person's records" (false split).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
from rich.table import Table

from immigrationos.core.errors import ValidationFailed

__all__ = ["CultureMetrics", "Evaluation", "Truth", "evaluate", "load_truth"]

IntArray = npt.NDArray[np.int64]

_KEY_ALIASES = ("record_key", "key", "unique_id")
_ENTITY_ALIASES = ("entity_id", "person_id", "cluster_id")
_READERS = {
    ".csv": "read_csv(?, all_varchar = true, header = true)",
    ".parquet": "read_parquet(?)",
    ".pq": "read_parquet(?)",
    ".jsonl": "read_json(?, format = 'newline_delimited')",
    ".ndjson": "read_json(?, format = 'newline_delimited')",
}


@dataclass(frozen=True)
class Truth:
    """The true entity (and, optionally, name culture) of each record key."""

    entity_of: Mapping[str, str]
    culture_of: Mapping[str, str] = field(default_factory=dict)
    origin: str = "<memory>"

    @classmethod
    def from_columns(
        cls,
        keys: Sequence[str | None],
        entities: Sequence[str | None],
        cultures: Sequence[str | None] | None = None,
        origin: str = "<memory>",
    ) -> Truth:
        """Build a truth from parallel columns; null culture means "not known" for that key.

        Raises ``ValidationFailed`` naming ``origin`` on a null key or entity, or a duplicate key.
        """
        _check_keys(keys, entities, origin)
        entity_of = {str(k): str(e) for k, e in zip(keys, entities, strict=True)}
        culture_of: dict[str, str] = {}
        if cultures is not None:
            pairs = zip(keys, cultures, strict=True)
            culture_of = {str(k): c for k, c in pairs if c is not None}
        return cls(entity_of, culture_of, origin)

    def __len__(self) -> int:
        return len(self.entity_of)


def _check_keys(keys: Sequence[str | None], entities: Sequence[str | None], origin: str) -> None:
    """Refuse null keys, null entities and duplicate keys, naming a few of the offenders."""
    if any(k is None for k in keys):
        raise ValidationFailed(f"{origin}: record key is empty on some rows")
    missing = [k for k, e in zip(keys, entities, strict=True) if e is None]
    if missing:
        raise ValidationFailed(f"{origin}: entity id is empty for key(s) {missing[:5]}")
    if len(set(keys)) != len(keys):
        duplicates = [k for k, n in Counter(keys).items() if n > 1]
        raise ValidationFailed(
            f"{origin}: duplicate record key(s) {duplicates[:5]} ({len(duplicates)} in all)"
        )


def load_truth(path: Path) -> Truth:
    """Read a truth file: CSV, Parquet or JSON Lines, chosen by the file's suffix.

    Columns: ``record_key`` (or ``key`` / ``unique_id``), ``entity_id`` (or ``person_id`` /
    ``cluster_id``), optional ``source`` (then the key is ``f"{source}:{record_key}"``) and
    optional ``name_culture``. Values are read as text, so leading zeros survive.
    """
    table = _read_table(path)
    columns = set(table.column_names)
    key = _pick(columns, _KEY_ALIASES, path)
    entity = _pick(columns, _ENTITY_ALIASES, path)
    keys: list[str | None] = table.column(key).to_pylist()
    if "source" in columns:
        sources = table.column("source").to_pylist()
        keys = [None if k is None else f"{s}:{k}" for s, k in zip(sources, keys, strict=True)]
    cultures = table.column("name_culture").to_pylist() if "name_culture" in columns else None
    return Truth.from_columns(keys, table.column(entity).to_pylist(), cultures, origin=str(path))


def _read_table(path: Path) -> pa.Table:
    """The file as an Arrow table of strings, or ``ValidationFailed`` naming the file."""
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        known = ", ".join(sorted(_READERS))
        raise ValidationFailed(f"{path}: unknown truth file type {path.suffix!r} (use {known})")
    if not path.is_file():
        raise ValidationFailed(f"{path}: no such truth file")
    try:
        with duckdb.connect() as con:
            relation = con.sql(f"SELECT * FROM {reader}", params=[str(path)])
            names = relation.columns
            text = ", ".join(f'CAST("{n}" AS VARCHAR) AS "{n}"' for n in names)
            return relation.select(text).to_arrow_table()
    except duckdb.Error as exc:
        raise ValidationFailed(f"{path}: cannot read truth file: {exc}") from exc


def _pick(columns: set[str], aliases: tuple[str, ...], path: Path) -> str:
    """The first alias present among the columns, or ``ValidationFailed`` listing them."""
    for name in aliases:
        if name in columns:
            return name
    raise ValidationFailed(
        f"{path}: missing column {aliases[0]!r} (or one of {', '.join(aliases[1:])}); "
        f"found {', '.join(sorted(columns)) or 'no columns'}"
    )


@dataclass(frozen=True)
class CultureMetrics:
    """Record-level error rates for the records of one name culture."""

    culture: str
    records: int
    false_merge_records: int
    false_split_records: int

    @property
    def false_merge_rate(self) -> float:
        """Share of this culture's records whose predicted cluster holds another's record."""
        return self.false_merge_records / self.records

    @property
    def false_split_rate(self) -> float:
        """Share of this culture's records separated from some record of their own person."""
        return self.false_split_records / self.records

    def to_json(self) -> dict[str, Any]:
        """Plain values, rates included."""
        return asdict(self) | {
            "false_merge_rate": self.false_merge_rate,
            "false_split_rate": self.false_split_rate,
        }


@dataclass(frozen=True)
class Evaluation:
    """The scores of one predicted clustering against the truth (see the module docstring)."""

    records: int
    only_in_predicted: int
    only_in_truth: int
    predicted_clusters: int
    true_entities: int
    predicted_pairs: int
    true_pairs: int
    correct_pairs: int
    merged_clusters: int
    split_entities: int
    false_merge_records: int
    false_split_records: int
    bcubed_precision: float
    bcubed_recall: float
    cultures: tuple[CultureMetrics, ...] = ()

    @property
    def pairwise_precision(self) -> float:
        """Share of the pairs predicted together that are truly the same entity."""
        return _ratio(self.correct_pairs, self.predicted_pairs)

    @property
    def pairwise_recall(self) -> float:
        """Share of the truly matching pairs that were predicted together."""
        return _ratio(self.correct_pairs, self.true_pairs)

    @property
    def pairwise_f1(self) -> float:
        """Harmonic mean of pairwise precision and recall."""
        return _f1(self.pairwise_precision, self.pairwise_recall)

    @property
    def bcubed_f1(self) -> float:
        """Harmonic mean of B-cubed precision and recall."""
        return _f1(self.bcubed_precision, self.bcubed_recall)

    @property
    def false_merge_pairs(self) -> int:
        """Pairs predicted together that belong to different entities."""
        return self.predicted_pairs - self.correct_pairs

    @property
    def false_split_pairs(self) -> int:
        """Pairs of one entity that were predicted apart."""
        return self.true_pairs - self.correct_pairs

    @property
    def false_merge_rate(self) -> float:
        """Share of records whose predicted cluster contains a record of another entity."""
        return _ratio(self.false_merge_records, self.records, empty=0.0)

    @property
    def false_split_rate(self) -> float:
        """Share of records with some record of their own entity outside their cluster."""
        return _ratio(self.false_split_records, self.records, empty=0.0)

    @property
    def culture_false_merge_ratio(self) -> float | None:
        """Worst culture's false-merge rate over the best's (None without cultures).

        The best rate is floored at ``1 / records`` of that culture (best = the smallest of
        ``max(rate, 1 / records)`` over cultures), so a culture with no error at all does not
        make the ratio infinite: with no errors observed among *n* records, the rate is taken
        to be at most one in *n*. When no culture has any error the ratio is 1.0 (parity).
        """
        return _worst_over_best([(c.false_merge_rate, c.records) for c in self.cultures])

    @property
    def culture_false_split_ratio(self) -> float | None:
        """Worst culture's false-split rate over the best's, floored as the merge ratio is."""
        return _worst_over_best([(c.false_split_rate, c.records) for c in self.cultures])

    def to_json(self) -> dict[str, Any]:
        """Every count, score and per-culture row as plain JSON values."""
        counts = asdict(self)
        counts["cultures"] = [c.to_json() for c in self.cultures]
        derived = {name: getattr(self, name) for name in _DERIVED}
        return counts | derived

    def table(self) -> Table:
        """The main scores as a Rich table (one metric per row)."""
        table = Table(title="Entity resolution against the truth")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for label, value in self._rows():
            table.add_row(label, value)
        return table

    def culture_table(self) -> Table:
        """Record-level error rates per name culture as a Rich table, worst merge rate first."""
        table = Table(title="Errors by name culture (record level)")
        for name in ("culture", "records", "false-merge rate", "false-split rate"):
            table.add_column(name, justify="left" if name == "culture" else "right")
        for c in sorted(self.cultures, key=lambda c: (-c.false_merge_rate, c.culture)):
            table.add_row(
                c.culture, f"{c.records:,}", _pct(c.false_merge_rate), _pct(c.false_split_rate)
            )
        return table

    def _rows(self) -> list[tuple[str, str]]:
        rows = [
            ("records scored", f"{self.records:,}"),
            (
                "only in predicted / only in truth",
                f"{self.only_in_predicted:,} / {self.only_in_truth:,}",
            ),
            (
                "predicted clusters / true entities",
                f"{self.predicted_clusters:,} / {self.true_entities:,}",
            ),
            (
                "pairwise precision / recall / F1",
                _prf(self.pairwise_precision, self.pairwise_recall, self.pairwise_f1),
            ),
            (
                "B-cubed precision / recall / F1",
                _prf(self.bcubed_precision, self.bcubed_recall, self.bcubed_f1),
            ),
            (
                "false-merge pairs / false-split pairs",
                f"{self.false_merge_pairs:,} / {self.false_split_pairs:,}",
            ),
            (
                "merged clusters / split entities",
                f"{self.merged_clusters:,} / {self.split_entities:,}",
            ),
            (
                "false-merge records",
                f"{self.false_merge_records:,} ({_pct(self.false_merge_rate)})",
            ),
            (
                "false-split records",
                f"{self.false_split_records:,} ({_pct(self.false_split_rate)})",
            ),
        ]
        ratio = self.culture_false_merge_ratio
        if ratio is not None:
            rows.append(("false-merge rate, worst / best culture", f"{ratio:.2f}×"))
        return rows


_DERIVED = (
    "pairwise_precision",
    "pairwise_recall",
    "pairwise_f1",
    "bcubed_f1",
    "false_merge_pairs",
    "false_split_pairs",
    "false_merge_rate",
    "false_split_rate",
    "culture_false_merge_ratio",
    "culture_false_split_ratio",
)


def _ratio(numerator: int, denominator: int, empty: float = 1.0) -> float:
    return numerator / denominator if denominator else empty


def _f1(precision: float, recall: float) -> float:
    total = precision + recall
    return 2 * precision * recall / total if total else 0.0


def _pct(rate: float) -> str:
    return f"{100 * rate:.2f} %"


def _prf(precision: float, recall: float, f1: float) -> str:
    return f"{precision:.4f} / {recall:.4f} / {f1:.4f}"


def _worst_over_best(rates: list[tuple[float, int]]) -> float | None:
    if not rates:
        return None
    worst = max(rate for rate, _ in rates)
    if worst == 0:
        return 1.0
    best = min(max(rate, 1 / n) for rate, n in rates)
    return worst / best


def evaluate(predicted: Mapping[str, str], truth: Truth) -> Evaluation:
    """Score ``predicted`` (record key → cluster id) against ``truth``; see the module docstring."""
    keys = [k for k in predicted if k in truth.entity_of]
    pred = _codes([predicted[k] for k in keys])
    true = _codes([truth.entity_of[k] for k in keys])
    table = _Contingency.of(pred, true)
    flags_merge, flags_split = table.record_flags()
    cultures = _per_culture(keys, truth.culture_of, flags_merge, flags_split)
    return Evaluation(
        records=len(keys),
        only_in_predicted=len(predicted) - len(keys),
        only_in_truth=len(truth.entity_of) - len(keys),
        predicted_clusters=len(table.pred_sizes),
        true_entities=len(table.true_sizes),
        predicted_pairs=_pairs(table.pred_sizes),
        true_pairs=_pairs(table.true_sizes),
        correct_pairs=_pairs(table.cell_sizes),
        merged_clusters=_more_than_one(table.cell_pred),
        split_entities=_more_than_one(table.cell_true),
        false_merge_records=int(flags_merge.sum()),
        false_split_records=int(flags_split.sum()),
        bcubed_precision=table.bcubed(table.pred_sizes[table.cell_pred]),
        bcubed_recall=table.bcubed(table.true_sizes[table.cell_true]),
        cultures=cultures,
    )


def _codes(values: list[str]) -> IntArray:
    """Dense integer codes 0..k-1 for the distinct values (Arrow's dictionary encoding)."""
    encoded = pa.array(values, type=pa.string()).dictionary_encode()
    return np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)


def _pairs(sizes: IntArray) -> int:
    """Σ C(n, 2) over the sizes."""
    return int((sizes * (sizes - 1) // 2).sum())


def _more_than_one(labels: IntArray) -> int:
    """How many labels occur in more than one non-empty cell."""
    return int((np.bincount(labels) > 1).sum()) if len(labels) else 0


@dataclass(frozen=True)
class _Contingency:
    """The non-empty cells of the predicted × true contingency table, and the record → cell map.

    ``cell_pred[c]``, ``cell_true[c]`` and ``cell_sizes[c]`` are the predicted cluster, the true
    entity and the record count of cell ``c``; ``record_cell[r]`` is record ``r``'s cell.
    """

    cell_pred: IntArray
    cell_true: IntArray
    cell_sizes: IntArray
    record_cell: IntArray
    pred_sizes: IntArray
    true_sizes: IntArray

    @classmethod
    def of(cls, pred: IntArray, true: IntArray) -> _Contingency:
        n_true = int(true.max()) + 1 if len(true) else 1
        cells, record_cell, sizes = np.unique(
            pred * n_true + true, return_inverse=True, return_counts=True
        )
        cell_pred, cell_true = cells // n_true, cells % n_true
        return cls(
            cell_pred=cell_pred,
            cell_true=cell_true,
            cell_sizes=sizes.astype(np.int64),
            record_cell=record_cell.reshape(-1).astype(np.int64),
            pred_sizes=np.bincount(cell_pred, weights=sizes).astype(np.int64),
            true_sizes=np.bincount(cell_true, weights=sizes).astype(np.int64),
        )

    def bcubed(self, cluster_size_per_cell: IntArray) -> float:
        """Mean over records of |own cell| / |own cluster|: Σ n_ij² / size, divided by N."""
        total = int(self.cell_sizes.sum())
        if not total:
            return 1.0
        return float((self.cell_sizes**2 / cluster_size_per_cell).sum() / total)

    def record_flags(self) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """Per record: falsely merged (cluster > own cell), falsely split (entity > own cell)."""
        merged = self.pred_sizes[self.cell_pred] > self.cell_sizes
        split = self.true_sizes[self.cell_true] > self.cell_sizes
        return merged[self.record_cell], split[self.record_cell]


def _per_culture(
    keys: list[str],
    culture_of: Mapping[str, str],
    merged: npt.NDArray[np.bool_],
    split: npt.NDArray[np.bool_],
) -> tuple[CultureMetrics, ...]:
    """Record-level error counts per name culture, for the scored keys with a culture."""
    if not culture_of:
        return ()
    known = np.array([k in culture_of for k in keys], dtype=bool)
    names = [culture_of[k] for k, has in zip(keys, known, strict=True) if has]
    if not names:
        return ()
    labels = pa.array(names, type=pa.string()).dictionary_encode()
    codes = np.asarray(labels.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    records = np.bincount(codes)
    merges = np.bincount(codes, weights=merged[known]).astype(np.int64)
    splits = np.bincount(codes, weights=split[known]).astype(np.int64)
    return tuple(
        CultureMetrics(str(name), int(n), int(m), int(s))
        for name, n, m, s in zip(
            labels.dictionary.to_pylist(), records, merges, splits, strict=True
        )
    )
