"""Incremental linking: one new record against the person index, without a full re-run.

Splink 5 scores the edges of a new record (``predict_between``, ``score_pair``), but each
call plans and runs SQL over the whole index, and keeping cluster membership and person ids
up to date is left to the user. This module is that layer, held in memory and kept apart
from the database (the service persists what :meth:`LinkIndex.link` decides):

- candidates come from the same blocking rules the batch run uses
  (:data:`~immigrationos.resolution.model.BLOCKING_RULES`), each turned into a key lookup;
- every candidate pair is scored by :class:`~immigrationos.resolution.model.Parameters`,
  i.e. the trained Splink model evaluated in Python (a test checks it agrees with Splink):
  all candidates of a record at once over the index's columns as arrays
  (:mod:`~immigrationos.resolution.columns`), or, for up to :data:`PAIRWISE` candidates,
  pair by pair on rows read back from those columns (both give the same weights to the bit);
- a pair whose record lacks a trait the new record holds (an A-number, say) is weighed
  against the person's other records too, as clustering weighs two groups
  (:mod:`~immigrationos.resolution.held_apart`);
- the pairs are aggregated per person (the best pair speaks for the person) and banded:
  linked, review (including a possible merge of two persons, never done automatically), or
  new, with a fresh id from :func:`~immigrationos.resolution.cluster.new_person_id`.

Why the blocking index is written here: a dict of Python lists per rule costs a few hundred
bytes per key (gigabytes at a million persons) and minutes of interpreter time to build.
Instead each rule key is a 64-bit hash (BLAKE2b of each value, mixed in order) kept as a
sorted NumPy array beside the row numbers it stands for: built with array operations, about
12 bytes per record and rule, looked up by binary search within the stretch a directory of
the keys' top bits points to (:class:`SortedKeys`). A hash collision only adds a candidate
that scoring then rejects. Records added after the build sit in small dicts
beside the arrays. The index is not thread-safe for :meth:`LinkIndex.add`; serialise writers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from immigrationos.core.frozen import quick_init
from immigrationos.resolution.cluster import new_person_id
from immigrationos.resolution.columns import (
    IDENTIFIER_COLUMNS,
    Candidates,
    FeatureColumns,
    column_hashes,
    unique_hash,
    value_hash,
)
from immigrationos.resolution.comparisons import COMPARISONS, Lefts, distinct, ranges
from immigrationos.resolution.held_apart import GroupCheck, HeldApart, Pairs, held_back
from immigrationos.resolution.model import (
    BLOCKING_RULES,
    BOUNDED,
    EachScore,
    ModelDoc,
    PairScores,
    Parameters,
    Score,
)
from immigrationos.resolution.records import FEATURE_SCHEMA, feature_row

Band = Literal["linked", "review", "new"]
Hashes = npt.NDArray[np.uint64]
Rows = npt.NDArray[np.int64]

#: A block larger than this (records for one key of one rule) is skipped, not scored: such a
#: block is a placeholder value or a very common key, and the other rules still apply.
MAX_BLOCK = 2_000
#: Persons listed in a decision's explanation (the best first; the count covers all).
EXPLAINED_PERSONS = 10
#: Up to this many candidates are scored pair by pair; more, as arrays (each array operation
#: has a fixed cost of a few microseconds, each pair in Python some tens).
PAIRWISE = 4
#: A record with more candidates than this has those that cannot reach the review weight,
#: whatever their names, left unscored (:meth:`LinkIndex.prune`). Fewer are all scored, so
#: that an explanation of a record with a few candidates names every person considered.
PRUNE_ABOVE = PAIRWISE
#: What floating-point addition in another order may take off a pair's bound.
_BOUND_SLACK = 1e-9
TF_COLUMNS = ("given", "family")
#: The exact lookup of a travel document: its number and issuing country (departure matching).
DOCUMENT_COLUMNS = ("passport_no", "passport_country")
#: What a document holder is read with (:class:`DocumentHolder`): enough to tell, without
#: scoring, whether its birth date and first names agree with the record looked up.
HOLDER_COLUMNS = ("unique_id", *DOCUMENT_COLUMNS, "dob", "given_first", "family_first")

_MASK = (1 << 64) - 1
_MIX = 0x9E3779B97F4A7C15
_TERM = re.compile(r"^\s*l\.(\w+)\s*=\s*r\.(\w+)\s*$")


# -- blocking keys ----------------------------------------------------------------------------


def key_hash(values: Iterable[Any]) -> int:
    """The key of one record for one rule: its values' hashes mixed in rule order."""
    h = 0
    for value in values:
        h = (h * _MIX + value_hash(value)) & _MASK
    return h


def keys_of(hashes: Sequence[Hashes]) -> tuple[Rows, Hashes]:
    """:func:`key_hash` of many records at once, from each rule column's value hashes (0:
    missing): the records that have every value, and their keys."""
    key = np.zeros(len(hashes[0]), dtype=np.uint64)
    valid = np.ones(len(key), dtype=np.bool_)
    for column in hashes:
        key = key * np.uint64(_MIX) + column
        valid &= column != 0
    who = np.flatnonzero(valid)
    return who, key[who]


class _Hashed(dict[str, Hashes]):
    """Each column's value hashes over a few feature rows (0: missing), made on first use."""

    def __init__(self, rows: Sequence[Mapping[str, Any]]) -> None:
        super().__init__()
        self.rows = rows

    def __missing__(self, col: str) -> Hashes:
        values = [row.get(col) for row in self.rows]
        key = unique_hash if col in IDENTIFIER_COLUMNS else value_hash
        found = np.array([0 if v is None else key(v) for v in values], dtype=np.uint64)
        self[col] = found
        return found


@dataclass(frozen=True)
class Probe:
    """One direction of a blocking rule: index records by ``indexed``, look up by ``probe``.

    ``l.dob = r.dob AND l.given_first = r.family_first`` indexes records by (dob,
    family_first) and probes with the new record's (dob, given_first); since the new record
    may be either side of the pair, the reverse direction is a second probe.
    """

    label: str
    indexed: tuple[str, ...]
    probe: tuple[str, ...]


def parse_rule(label: str, sql: str) -> list[Probe]:
    """The probes of an ``l.a = r.b AND ...`` equi-join rule (two if it is not symmetric)."""
    pairs = []
    for term in re.split(r"\s+AND\s+", sql.strip(), flags=re.IGNORECASE):
        found = _TERM.match(term)
        if not found:
            raise ValueError(f"blocking rule {label!r}: {term!r} is not 'l.col = r.col'")
        pairs.append((found.group(1), found.group(2)))
    left = tuple(a for a, _ in pairs)
    right = tuple(b for _, b in pairs)
    probes = [Probe(label, indexed=right, probe=left)]
    if left != right:
        probes.append(Probe(label, indexed=left, probe=right))
    return probes


def probes_of(rules: Iterable[tuple[str, str]] = BLOCKING_RULES) -> list[Probe]:
    """Every probe of the (label, SQL) blocking rules, in rule order."""
    return [p for label, sql in rules for p in parse_rule(label, sql)]


class SortedKeys:
    """Sorted 64-bit keys with a directory by their top bits (about one entry per key, at
    most 2**20), so that finding a key searches the few keys that share its top bits (a
    cache line or two) instead of the whole array: a binary search over millions of keys
    misses the cache at most of its twenty-odd steps."""

    MAX_BITS = 20
    #: Below this many keys the whole array is searched (it fits in the cache).
    SMALL = 1 << 16

    def __init__(self, keys: Hashes) -> None:
        self.keys = keys
        self.bits = min(self.MAX_BITS, max(4, len(keys).bit_length()))
        tops = np.arange(1 << self.bits, dtype=np.uint64) << np.uint64(64 - self.bits)
        kind = np.int32 if len(keys) < 2**31 else np.int64
        self._directory = np.append(np.searchsorted(keys, tops), len(keys)).astype(kind)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + self._directory.nbytes)

    def span(self, key: int) -> tuple[int, int]:
        """Where ``key`` sits: ``keys[lo:hi]`` are the ones equal to it."""
        top = key >> (64 - self.bits)
        lo, hi = int(self._directory[top]), int(self._directory[top + 1])
        if lo == hi:
            return lo, lo
        if key == _MASK:
            return lo + int(np.searchsorted(self.keys[lo:hi], np.uint64(key))), hi
        ends = self.keys[lo:hi].searchsorted(np.array([key, key + 1], dtype=np.uint64))
        first, last = ends.tolist()
        return lo + first, lo + last

    def spans(self, keys: Hashes) -> tuple[Rows, Rows]:
        """:meth:`span` of many keys at once: each key's stretch of the directory bisected,
        all keys a step at a time as arrays (a few steps: a stretch holds a few keys), and
        its end only for the keys found (most keys of a batch find nothing). A quarter of the
        time of NumPy's search of the whole array, at millions of keys."""
        if len(self.keys) < self.SMALL:
            return self._searched(keys)
        top = (keys >> np.uint64(64 - self.bits)).astype(np.intp)
        start = self._directory[top].astype(np.int64)
        stop = self._directory[top + 1].astype(np.int64)
        lo = _bisect(self.keys, start, stop.copy(), keys, right=False)
        hi = lo.copy()
        hit = np.flatnonzero(lo < stop)
        hit = hit[self.keys[lo[hit]] == keys[hit]]
        if len(hit):
            hi[hit] = _bisect(self.keys, lo[hit] + 1, stop[hit], keys[hit], right=True)
        return lo, hi

    def _searched(self, keys: Hashes) -> tuple[Rows, Rows]:
        """:meth:`spans` by NumPy's search of the whole array, the keys in sorted order (each
        search then starts from where the one before ended)."""
        if len(keys) < 2 or not len(self.keys):
            return self.keys.searchsorted(keys, "left"), self.keys.searchsorted(keys, "right")
        order = np.argsort(keys)
        ordered = keys[order]
        lo = np.empty(len(keys), dtype=np.int64)
        hi = np.empty(len(keys), dtype=np.int64)
        lo[order] = self.keys.searchsorted(ordered, "left")
        hi[order] = self.keys.searchsorted(ordered, "right")
        return lo, hi


def _bisect(keys: Hashes, lo: Rows, hi: Rows, wanted: Hashes, right: bool) -> npt.NDArray[np.int64]:
    """For each ``i``, the first position in ``keys[lo[i]:hi[i]]`` (sorted) whose key is
    above ``wanted[i]`` (``right``) or not below it (else); ``hi[i]`` if none. ``lo`` and
    ``hi`` are consumed."""
    live = np.flatnonzero(lo < hi)
    while len(live):
        mid = (lo[live] + hi[live]) >> 1
        found = keys[mid]
        after = (found <= wanted[live]) if right else (found < wanted[live])
        lo[live[after]] = mid[after] + 1
        hi[live[~after]] = mid[~after]
        live = live[lo[live] < hi[live]]
    return lo


@dataclass
class _Block:
    """One probe's sorted keys and the rows behind them, plus rows added since the build."""

    keys: SortedKeys
    rows: Rows
    added: dict[int, list[int]] = field(default_factory=dict)

    @classmethod
    def build(cls, columns: list[Hashes]) -> _Block:
        """From each rule column's value hashes (0: missing, which leaves the row out)."""
        rows, keys = keys_of(columns)
        order = np.argsort(keys, kind="stable")
        return cls(keys=SortedKeys(keys[order]), rows=rows[order].astype(np.int64))

    def lookup(self, key: int) -> Rows:
        """The rows of ``key``, ascending and each once (the indexed rows sort by row within
        a key, and the added ones come after them in order)."""
        lo, hi = self.keys.span(key)
        return self._with_added(key, self.rows[lo:hi])

    def lookup_many(self, keys: Hashes) -> tuple[Rows, Rows]:
        """:meth:`lookup` of many keys at once: the rows found, each with the number of the
        key that found it; grouped by key, each key's rows in :meth:`lookup`'s order."""
        lo, hi = self.keys.spans(keys)
        which, at = ranges(lo, hi - lo)
        found = self.rows[at]
        if self.added:
            extra = [(i, self.added[k]) for i, k in enumerate(keys.tolist()) if k in self.added]
            if extra:
                more = [np.full(len(rows), i, dtype=np.int64) for i, rows in extra]
                which = np.concatenate([which, *more])
                found = np.concatenate([found, *(np.array(r, dtype=np.int64) for _, r in extra)])
                order = np.argsort(which, kind="stable")
                which, found = which[order], found[order]
        return which, found

    def _with_added(self, key: int, found: Rows) -> Rows:
        """``found`` (the indexed rows of ``key``) followed by the rows added since."""
        extra = self.added.get(key)
        return np.concatenate([found, np.array(extra, dtype=np.int64)]) if extra else found

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + self.rows.nbytes)


# -- term frequencies -------------------------------------------------------------------------


class TermFrequencies(Mapping[str, float]):
    """Relative frequency of each value of one column, kept as counts so adds are cheap."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts
        self.total = sum(counts.values())

    @classmethod
    def of(cls, column: pa.ChunkedArray) -> TermFrequencies:
        counted = pc.value_counts(column.drop_null())
        values = counted.field("values").to_pylist()
        counts = counted.field("counts").to_pylist()
        return cls(dict(zip(values, counts, strict=True)))

    def add(self, value: str | None) -> None:
        if value is not None:
            self.counts[value] = self.counts.get(value, 0) + 1
            self.total += 1

    def __getitem__(self, value: str) -> float:
        return self.counts[value] / self.total

    def __iter__(self) -> Iterator[str]:
        return iter(self.counts)

    def __len__(self) -> int:
        return len(self.counts)


# -- decisions --------------------------------------------------------------------------------


@quick_init
@dataclass(frozen=True)
class DocumentHolder:
    """A record of the index holding a looked-up document: its row, person and features."""

    row: int
    person_id: str
    features: dict[str, Any]
    """Its :data:`HOLDER_COLUMNS`."""


@quick_init
@dataclass(frozen=True)
class Candidate:
    """The best pair between the new record and one person."""

    person_id: str
    record_id: str
    score: Score


@quick_init
@dataclass(frozen=True)
class Ranking:
    """The persons blocked with a record, ranked by their best pair (best first)."""

    weights: npt.NDArray[np.float64]
    """Each person's best match weight, best first."""
    leaders: list[Candidate]
    """The first persons (ties broken by person id); only the first carries the contributions
    of its pair (the others' are left empty), the explanation needs no more."""
    pairs: int
    """Candidate pairs scored."""

    def __len__(self) -> int:
        return len(self.weights)

    @property
    def top(self) -> Candidate | None:
        return self.leaders[0] if self.leaders else None


@dataclass
class LinkDecision:
    """What the index proposes for one new record, and why (for the audit and the reviewer)."""

    band: Band
    person_id: str
    """Linked: the person; review: the best person; new: a fresh person id."""
    match_weight: float | None
    probability: float | None
    explanation: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "band": self.band,
            "person_id": self.person_id,
            "match_weight": None if self.match_weight is None else round(self.match_weight, 4),
            "probability": None if self.probability is None else round(self.probability, 6),
            "explanation": self.explanation,
        }


def band_of(ranked: list[Candidate], doc: ModelDoc) -> tuple[Band, str]:
    """The band for persons ranked by best weight, and the reason in words."""
    return band_of_weights([c.score.match_weight for c in ranked], doc)


def band_of_weights(weights: npt.ArrayLike, doc: ModelDoc) -> tuple[Band, str]:
    """:func:`band_of` from the persons' best weights, best first."""
    best = np.asarray(weights, dtype=np.float64)
    if not len(best) or best[0] < doc.review_weight:
        return "new", "no person reaches the review weight"
    above = int(np.count_nonzero(best >= doc.link_weight))
    if above > 1:
        return "review", f"{above} persons reach the link weight: a possible merge"
    if above:
        return "linked", "one person reaches the link weight"
    return "review", "the best person is between the review and link weights"


@dataclass(frozen=True)
class Batch:
    """The candidates of several records (:meth:`LinkIndex.candidates_many`): pair ``i`` is
    record ``of[i]`` against index row ``rows[i]``, sorted by record, then row."""

    of: npt.NDArray[np.intp]
    rows: Rows
    skipped: list[list[str]]
    """Per record, the rules whose block was too large to score."""
    each: dict[tuple[str, ...], Any] = field(default_factory=dict, compare=False, repr=False)
    """What scoring computed per record (:class:`Lefts`), kept for every pass over them: the
    blocking keys' value hashes, then what :meth:`LinkIndex.prune_many` needed."""


# -- the index --------------------------------------------------------------------------------


@dataclass
class _Timer:
    started: float = field(default_factory=time.perf_counter)
    marks: dict[str, float] = field(default_factory=dict)

    @classmethod
    def after(cls, marks: dict[str, float]) -> _Timer:
        """A timer that has already counted ``marks`` (milliseconds), as if they just passed."""
        timer = cls(time.perf_counter() - sum(marks.values()) / 1000)
        timer.marks = dict(marks)
        return timer

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.marks[name] = round((now - self.started) * 1000 - sum(self.marks.values()), 3)

    def total(self) -> dict[str, float]:
        return {**self.marks, "total": round(sum(self.marks.values()), 3)}


class LinkIndex:
    """The person index in memory: feature rows, person of each record, blocking keys, TF.

    Build it with :meth:`build`; :meth:`link` proposes a decision for a new record and
    :meth:`add` records the outcome so that the next link sees it.
    """

    def __init__(
        self,
        table: pa.Table,
        person_codes: npt.NDArray[np.int32],
        persons: list[str],
        doc: ModelDoc,
        probes: list[Probe],
        blocks: list[_Block],
    ) -> None:
        self.doc = doc
        self.params = Parameters(doc)
        self.probes = probes
        self._blocks = blocks
        self._table = table
        self._codes = person_codes
        """Every row's person code (indexed and added rows; grows with :attr:`features`)."""
        self._persons = persons
        self._code_of = {p: i for i, p in enumerate(persons)}
        self._taken = set(persons)
        self._uid_keys, self._uid_rows = _uid_index(table.column("unique_id"))
        self._added_rows: list[dict[str, Any]] = []
        self._added_uids: dict[str, int] = {}
        self.tf = {c: TermFrequencies.of(table.column(c)) for c in TF_COLUMNS}
        self._documents: _Block | None = None
        self._columns: dict[str, list[Any]] | None = None
        self.features = FeatureColumns(table)
        # The bound on names reads the other comparisons' columns only (after the names').
        bounded = {
            column
            for comparison in COMPARISONS
            if comparison.name not in BOUNDED
            for level in comparison.levels
            if level.expr is not None
            for column in level.expr.columns()
        }
        self._bound_first = min(bounded, key=self.features.slot.__getitem__)
        self._group = GroupCheck(self.params, self.features, person_codes, table.num_rows)

    def materialize(self) -> None:
        """Hold the :data:`HOLDER_COLUMNS` as Python lists, so reading a document holder or
        a record id costs a microsecond instead of an Arrow take (about a millisecond), and
        number the list columns' tokens for scoring batches (``TokenLists``). For a long-lived
        index (the departure matcher); it costs about 300 bytes a record."""
        if self._columns is None:
            self._columns = {c: self._table.column(c).to_pylist() for c in HOLDER_COLUMNS}
            for column in self.features.sets:  # the set tests of batches (a second or so)
                self.features.token_lists(column).arrays()

    @classmethod
    def build(
        cls,
        features: pa.Table,
        person_of: Mapping[str, str],
        doc: ModelDoc,
        rules: Iterable[tuple[str, str]] = BLOCKING_RULES,
        known_person_ids: Iterable[str] = (),
    ) -> LinkIndex:
        """Index ``features`` (:data:`FEATURE_SCHEMA`) whose records belong to ``person_of``.

        ``known_person_ids`` are ids no new person may take (retired persons, say).
        """
        table = features.select(FEATURE_SCHEMA.names).combine_chunks()
        codes, persons = _person_codes(table.column("unique_id").to_pylist(), person_of)
        probes = probes_of(rules)
        indexed = {c for p in probes for c in p.indexed}
        hashed = {c: column_hashes(table.column(c), c in IDENTIFIER_COLUMNS) for c in indexed}
        blocks = [_Block.build([hashed[c] for c in p.indexed]) for p in probes]
        index = cls(table, codes, persons, doc, probes, blocks)
        index._taken.update(known_person_ids)
        return index

    # -- queries ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._table.num_rows + len(self._added_rows)

    def __contains__(self, unique_id: object) -> bool:
        return isinstance(unique_id, str) and self.row_of(unique_id) is not None

    @property
    def person_count(self) -> int:
        return len(self._persons)

    @property
    def nbytes(self) -> int:
        """Bytes held in arrays (features, blocking keys, record ids; not Python objects)."""
        arrays = self._uid_keys.nbytes + self._uid_rows.nbytes + self._codes.nbytes
        return int(self._table.nbytes + arrays + sum(b.nbytes for b in self._blocks)
                   + self.features.nbytes + self._group.nbytes)  # fmt: skip

    def row_of(self, unique_id: str) -> int | None:
        """The row number of a record, or None if it is not in the index."""
        if unique_id in self._added_uids:
            return self._added_uids[unique_id]
        return self._indexed_row(unique_id, *self._uid_keys.span(unique_hash(unique_id)))

    def rows_of(self, unique_ids: Sequence[str]) -> list[int | None]:
        """:meth:`row_of` of several records (the indexed ones' hashes searched at once)."""
        keys = np.fromiter((unique_hash(u) for u in unique_ids), np.uint64, len(unique_ids))
        lo, hi = self._uid_keys.spans(keys)
        out: list[int | None] = []
        for uid, a, b in zip(unique_ids, lo.tolist(), hi.tolist(), strict=True):
            found = self._added_uids.get(uid)
            out.append(self._indexed_row(uid, a, b) if found is None else found)
        return out

    def _indexed_row(self, unique_id: str, lo: int, hi: int) -> int | None:
        """The row among ``_uid_rows[lo:hi]`` (those whose id hash is the record's) whose
        id is ``unique_id``, if any."""
        rows = self._uid_rows[lo:hi].tolist()
        return next((r for r in rows if self._record_id(r) == unique_id), None)

    def person_of(self, unique_id: str) -> str | None:
        row = self.row_of(unique_id)
        return None if row is None else self._persons[self._code(row)]

    def _code(self, row: int) -> int:
        return int(self._codes[row])

    def _record_id(self, row: int) -> str:
        base = self._table.num_rows
        if row >= base:
            return str(self._added_rows[row - base]["unique_id"])
        if self._columns is not None:
            return str(self._columns["unique_id"][row])
        return str(self._table.column("unique_id")[row].as_py())

    def _holders(self, rows: Rows) -> list[dict[str, Any]]:
        """The :data:`HOLDER_COLUMNS` of rows by number; ``rows`` sorted, so indexed rows come
        before added."""
        base = self._table.num_rows
        old = rows if not len(rows) or rows[-1] < base else rows[rows < base]
        if self._columns is not None:
            at = old.tolist()
            names = tuple(self._columns)
            if len(at) > 1:
                take = itemgetter(*at)  # a tuple of the values at ``at``, in C
                taken = [take(values) for values in self._columns.values()]
            else:
                taken = [[values[i] for i in at] for values in self._columns.values()]
            fetched = [dict(zip(names, each, strict=True)) for each in zip(*taken, strict=True)]
        else:
            taken = self._table.select(list(HOLDER_COLUMNS)).take(pa.array(old))
            fetched = taken.to_pylist() if len(old) else []
        added = [self._added_rows[r - base] for r in rows[len(old) :].tolist()]
        return fetched + [{c: stored[c] for c in HOLDER_COLUMNS} for stored in added]

    # -- linking ------------------------------------------------------------------------------

    def candidates(self, row: Mapping[str, Any]) -> tuple[Rows, list[str]]:
        """Row numbers blocked with ``row`` by any rule, and the rules whose block was skipped."""
        found: list[Rows] = []
        skipped: list[str] = []
        for probe, block in zip(self.probes, self._blocks, strict=True):
            values = [row.get(c) for c in probe.probe]
            if any(v is None for v in values):
                continue
            rows = block.lookup(key_hash(values))
            if len(rows) > MAX_BLOCK:
                skipped.append(probe.label)
            elif len(rows):
                found.append(rows)
        if len(found) > 1:
            rows = distinct(np.concatenate(found))
        else:
            rows = found[0] if found else np.empty(0, dtype=np.int64)
        own = self.row_of(str(row.get("unique_id")))
        return (rows[rows != own] if own is not None else rows), skipped

    def candidates_many(self, rows: list[Mapping[str, Any]]) -> Batch:
        """:meth:`candidates` of several records at once: each rule's keys of all of them
        made and looked up as arrays, the union per record as one sort."""
        skipped: list[list[str]] = [[] for _ in rows]
        hashes = _Hashed(rows)
        found_of: list[Rows] = []
        found: list[Rows] = []
        for probe, block in zip(self.probes, self._blocks, strict=True):
            who, keys = keys_of([hashes[c] for c in probe.probe])
            if not len(who):
                continue
            which, numbers = block.lookup_many(keys)
            big = np.bincount(which, minlength=len(keys)) > MAX_BLOCK
            for i in who[big].tolist():
                skipped[i].append(probe.label)
            keep = ~big[which]
            found_of.append(who[which[keep]])
            found.append(numbers[keep])
        of = np.concatenate(found_of) if found_of else np.empty(0, dtype=np.int64)
        if len(of):
            pairs = distinct((of << 40) | np.concatenate(found))
            of, numbers = pairs >> 40, pairs & ((1 << 40) - 1)
        else:
            numbers = of
        own = self.rows_of([str(row.get("unique_id")) for row in rows])
        if any(o is not None for o in own):
            theirs = np.array([-1 if o is None else o for o in own], dtype=np.int64)
            keep = numbers != theirs[of]
            of, numbers = of[keep], numbers[keep]
        # The keys' value hashes are those Lefts.keys makes (value_hash, 0 for none).
        each: dict[tuple[str, ...], Any] = {("key", c): found for c, found in hashes.items()}
        return Batch(of.astype(np.intp), numbers, skipped, each)

    def document_rows(self, row: Mapping[str, Any]) -> list[DocumentHolder]:
        """The records holding the row's document (number and issuing country, exactly),
        without scoring; empty when it names none."""
        values = [row.get(c) for c in DOCUMENT_COLUMNS]
        if any(v is None for v in values):
            return []
        rows = self._document_block().lookup(key_hash(values))
        return [
            DocumentHolder(int(n), self._persons[self._code(int(n))], partner)
            for n, partner in zip(rows.tolist(), self._holders(rows), strict=True)
            if all(partner.get(c) == v for c, v in zip(DOCUMENT_COLUMNS, values, strict=True))
        ]

    def document_rows_many(self, rows: Sequence[Mapping[str, Any]]) -> list[list[DocumentHolder]]:
        """:meth:`document_rows` of several records, their documents looked up at once."""
        out: list[list[DocumentHolder]] = [[] for _ in rows]
        hashes = _Hashed(rows)
        who, keys = keys_of([hashes[c] for c in DOCUMENT_COLUMNS])
        if not len(who):
            return out
        which, found = self._document_block().lookup_many(keys)
        distinct, inverse = np.unique(found, return_inverse=True)
        stored = self._holders(distinct)
        persons, codes = self._persons, self._codes[found].tolist()
        number, country = DOCUMENT_COLUMNS
        holders = zip(who[which].tolist(), found.tolist(), inverse.tolist(), codes, strict=True)
        for i, n, k, code in holders:
            partner, row = stored[k], rows[i]
            if partner[number] == row.get(number) and partner[country] == row.get(country):
                out[i].append(DocumentHolder(n, persons[code], partner))
        return out

    def _document_block(self) -> _Block:
        """The lookup by document, built on first use (about a second per million records)."""
        if self._documents is None:
            base = self._table.num_rows
            self._documents = _Block.build(
                [self.features.column(c)[:base] for c in DOCUMENT_COLUMNS]
            )
            for i, added in enumerate(self._added_rows):
                self._index_document(added, base + i)
        return self._documents

    def by_document(
        self, row: Mapping[str, Any], holders: list[DocumentHolder] | None = None
    ) -> Ranking:
        """Persons holding the record's document, each with its best-scoring pair, best first
        (the record itself left out); ``holders`` when :meth:`document_rows` already ran."""
        found = self.document_rows(row) if holders is None else holders
        own = self.row_of(str(row.get("unique_id")))
        rows = np.array([h.row for h in found if h.row != own], dtype=np.int64)
        return self.rank(row, rows)

    def by_document_many(
        self, rows: Sequence[Mapping[str, Any]], holders: Sequence[list[DocumentHolder]]
    ) -> list[Ranking]:
        """:meth:`by_document` of several records, given their holders
        (:meth:`document_rows_many`): all their pairs scored at once (:meth:`rank_many`),
        the same rankings."""
        own = self.rows_of([str(row.get("unique_id")) for row in rows])
        of: list[int] = []
        numbers: list[int] = []
        for i, (found, mine) in enumerate(zip(holders, own, strict=True)):
            for holder in found:
                if holder.row != mine:
                    of.append(i)
                    numbers.append(holder.row)
        batch = Batch(
            np.array(of, dtype=np.intp), np.array(numbers, dtype=np.int64), [[] for _ in rows]
        )
        return self.rank_many(list(rows), batch)

    def _index_document(self, stored: Mapping[str, Any], number: int) -> None:
        values = [stored.get(c) for c in DOCUMENT_COLUMNS]
        if self._documents is not None and all(v is not None for v in values):
            self._documents.added.setdefault(key_hash(values), []).append(number)

    def link(self, raw: Mapping[str, Any]) -> LinkDecision:
        """Propose a decision for a raw record (:data:`records.RAW_COLUMNS`; needs unique_id)."""
        timer = _Timer()
        row = feature_row(dict(raw))
        timer.mark("features")
        return self._link(row, timer)

    def link_features(self, row: Mapping[str, Any]) -> LinkDecision:
        """As :meth:`link`, for a record whose feature row is already computed."""
        return self._link(row, _Timer())

    def _link(self, row: Mapping[str, Any], timer: _Timer) -> LinkDecision:
        rows, skipped = self.candidates(row)
        timer.mark("candidates")
        rows, pruned = self.prune(row, rows)
        ranked = self.rank(row, rows)
        timer.mark("scoring")
        return self._decide(row, ranked, skipped, timer, pruned)

    def prune(self, row: Mapping[str, Any], rows: Rows) -> tuple[Rows, int]:
        """``row``'s candidates ``rows`` without those that cannot reach the review weight
        whatever their names (:meth:`Parameters.bounds`: the other comparisons found, the
        names taken at their best), and how many were left out; all of them when there are
        :data:`PRUNE_ABOVE` or fewer.

        Such a pair could change no decision: a band needs a person at the review weight at
        least, and the group check weighs only pairs that reach it. What it would change is
        the explanation's list of persons below the review weight, which then names only the
        ones scored. Most candidates of a common name are of this kind: a namesake born in
        the same year on another day (-9 for the birth date) cannot make up for it with names
        that, being common, weigh little."""
        one = Batch(np.zeros(len(rows), dtype=np.intp), rows, [[]])
        kept, pruned = self.prune_many([row], one)
        return kept.rows, pruned[0]

    def prune_many(
        self, rows: Sequence[Mapping[str, Any]], batch: Batch
    ) -> tuple[Batch, list[int]]:
        """:meth:`prune` of several records' candidates at once; the same pairs left out."""
        counts = np.bincount(batch.of, minlength=len(rows))
        at = np.flatnonzero(counts[batch.of] > PRUNE_ABOVE)
        if not len(at):
            return batch, [0] * len(rows)
        lefts = Lefts(rows, batch.of[at], value_hash, batch.each)
        read = Candidates(self.features, batch.rows[at], first=self._bound_first)
        bound = self.params.bounds(lefts, read, self.tf)
        drop = np.zeros(len(batch.of), dtype=np.bool_)
        drop[at[bound < self.doc.review_weight - _BOUND_SLACK]] = True
        pruned = np.bincount(batch.of[drop], minlength=len(rows)).tolist()
        kept = Batch(batch.of[~drop], batch.rows[~drop], batch.skipped, batch.each)
        return kept, pruned

    def rank(self, row: Mapping[str, Any], rows: Rows, leaders: int = EXPLAINED_PERSONS) -> Ranking:
        """Score ``row`` against the index rows ``rows`` (sorted), keep each person's best
        pair (the first row of equal best weight), and rank the persons by that weight, then
        by person id; ``leaders`` persons are named."""
        if not len(rows):
            return Ranking(np.empty(0), [], 0)
        if len(rows) <= PAIRWISE:
            return self._rank_few(row, rows, leaders)
        scores = self.params.score_many(row, Candidates(self.features, rows), self.tf)
        codes = self._codes[rows]
        among = Pairs([row], np.zeros(len(rows), np.intp), rows, codes)
        held = self._group.check(among, scores.weights, self.doc.review_weight)
        weights = scores.weights if held is None else scores.weights + held.penalty
        order = np.lexsort((-weights, codes))  # stable: equal weights keep row order
        ordered = codes[order]
        first = np.ones(len(order), dtype=np.bool_)
        np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
        best = order[first]  # each person's best pair
        best_weights = weights[best]
        by_weight = np.argsort(-best_weights, kind="stable")
        ranked = best_weights[by_weight]
        named = min(leaders, len(best))
        # Persons tied with the last one named are ordered by id too, as a full sort would.
        tied = by_weight[: int(np.searchsorted(-ranked, -ranked[named - 1], side="right"))]
        person = self._persons
        chosen = sorted(tied.tolist(), key=lambda j: (-best_weights[j], person[codes[best[j]]]))
        chosen = chosen[:named]
        pairs = [int(best[j]) for j in chosen]
        named_ones = [self._candidate(scores, rows, pairs[0], held=held)] + [
            self._candidate(scores, rows, pair, float(weights[pair])) for pair in pairs[1:]
        ]
        return Ranking(ranked, named_ones, len(rows))

    def rank_many(
        self, rows: list[Mapping[str, Any]], batch: Batch, leaders: int = EXPLAINED_PERSONS
    ) -> list[Ranking]:
        """:meth:`rank` of several records, each against its candidates in ``batch``: every
        pair of all of them scored in one pass (:meth:`Parameters.score_pairs`), the best pair
        per person and the order of persons found for all records with one sort each. The
        rankings are those :meth:`rank` gives record by record, weights equal to the bit."""
        of, numbers = batch.of, batch.rows
        if not len(numbers):
            return [Ranking(np.empty(0), [], 0) for _ in rows]
        scores = self.params.score_pairs(
            Lefts(rows, of, value_hash, batch.each), Candidates(self.features, numbers), self.tf
        )
        codes = self._codes[numbers]
        among = Pairs(rows, of, numbers, codes)
        held = self._group.check(among, scores.weights, self.doc.review_weight)
        weights = scores.weights if held is None else scores.weights + held.penalty
        # Each record's pairs by person, best first (equal weights keep pair order).
        order = np.lexsort((-weights, codes, of))
        first = np.ones(len(order), dtype=np.bool_)
        np.not_equal(codes[order][1:], codes[order][:-1], out=first[1:])
        first[1:] |= of[order][1:] != of[order][:-1]
        best = order[first]  # each record's best pair per person, persons by code
        # Then each record's persons by best weight (equal weights keep person code order).
        best = best[np.lexsort((-weights[best], of[best]))]
        ranked = weights[best]
        ends = np.searchsorted(of[best], np.arange(len(rows) + 1), side="left").tolist()
        pair_counts = np.bincount(of, minlength=len(rows)).tolist()
        # Python lists from here: a few persons per record, read one by one.
        best_pairs, best_weights = best.tolist(), ranked.tolist()
        person, code_of = self._persons, codes.tolist()
        out = []
        for i in range(len(rows)):
            lo, hi = ends[i], ends[i + 1]
            if lo == hi:
                out.append(Ranking(np.empty(0), [], 0))
                continue
            # Persons tied with the last one named are ordered by id too, as a full sort would.
            cut = lo + min(leaders, hi - lo)
            last = best_weights[cut - 1]
            while cut < hi and best_weights[cut] >= last:
                cut += 1
            named = list(zip(best_weights[lo:cut], best_pairs[lo:cut], strict=True))
            if len(set(best_weights[lo:cut])) < cut - lo:  # ties: by id (else by weight)
                named.sort(key=lambda item: (-item[0], person[code_of[item[1]]]))
            tied = named[:leaders]
            top_pair = tied[0][1]
            named_ones = [self._candidate(scores, numbers, top_pair, held=held)] + [
                self._candidate(scores, numbers, pair, weight) for weight, pair in tied[1:]
            ]
            out.append(Ranking(ranked[lo:hi], named_ones, pair_counts[i]))
        return out

    def link_many(self, rows: list[Mapping[str, Any]]) -> list[LinkDecision]:
        """:meth:`link_features` of several records at once (none sees another: add them
        afterwards); the same decisions. Each explanation's timings are the batch's shared
        by its records, with ``batch`` saying how many."""
        started = time.perf_counter()
        batch = self.candidates_many(rows)
        found = time.perf_counter()
        batch, pruned = self.prune_many(rows, batch)  # timed as scoring, as in _link
        rankings = self.rank_many(rows, batch)
        scored = time.perf_counter()
        share = 1000 / max(len(rows), 1)
        marks = {
            "candidates": round((found - started) * share, 3),
            "scoring": round((scored - found) * share, 3),
        }
        out = []
        each = zip(rows, rankings, batch.skipped, pruned, strict=True)
        for row, ranked, skipped, left_out in each:
            decision = self._decide(row, ranked, skipped, _Timer.after(marks), left_out)
            decision.explanation["batch"] = len(rows)
            out.append(decision)
        return out

    def _rank_few(self, row: Mapping[str, Any], rows: Rows, leaders: int) -> Ranking:
        """:meth:`rank` pair by pair, for a few candidates."""
        mine = self.features.stored(row)
        scores = EachScore([self.params.score(mine, r, self.tf) for r in self.features.rows(rows)])
        weights = [s.match_weight for s in scores.scores]
        among = Pairs([row], np.zeros(len(rows), np.intp), rows, self._codes[rows])
        held = self._group.check(among, np.array(weights), self.doc.review_weight)
        if held is not None:
            weights = [w + p for w, p in zip(weights, held.penalty.tolist(), strict=True)]
        best: dict[int, int] = {}
        for pair, number in enumerate(rows.tolist()):
            code = self._code(number)
            if code not in best or weights[pair] > weights[best[code]]:
                best[code] = pair
        order = sorted(best.items(), key=lambda item: (-weights[item[1]], self._persons[item[0]]))
        named = [pair for _, pair in order[:leaders]]
        return Ranking(
            np.array([weights[pair] for _, pair in order], dtype=np.float64),
            [self._candidate(scores, rows, pair, weights[pair] if n else None, held)
             for n, pair in enumerate(named)],
            len(rows),
        )  # fmt: skip

    def _candidate(
        self,
        scores: PairScores | EachScore,
        rows: Rows,
        pair: int,
        weight: float | None = None,
        held: HeldApart | None = None,
    ) -> Candidate:
        """The pair's candidate; with ``weight`` (the group check's already in it), its score
        without contributions; else with them, and with the traits ``held`` apart, if any."""
        if weight is not None:
            score = Score(weight, ())
        else:
            score = scores.score(pair)
            if held is not None and (traits := held.traits.get(pair)):
                penalised = score.match_weight + float(held.penalty[pair])
                score = self._group.applied(score, traits, penalised)
        person = self._persons[self._code(int(rows[pair]))]
        return Candidate(person, self._record_id(int(rows[pair])), score)

    def _decide(
        self,
        row: Mapping[str, Any],
        ranked: Ranking,
        skipped: list[str],
        timer: _Timer,
        pruned: int = 0,
    ) -> LinkDecision:
        band, reason = band_of_weights(ranked.weights, self.doc)
        top = ranked.top
        if band == "new" or top is None:
            person = new_person_id([str(row.get("unique_id"))], self._taken)
        else:
            person = top.person_id
        timer.mark("decision")
        explanation = _explain(reason, ranked, skipped, timer, pruned)
        weight = top.score.match_weight if top else None
        return LinkDecision(
            band, person, weight, top.score.probability if top else None, explanation
        )

    # -- maintenance ----------------------------------------------------------------------------

    def add(self, unique_id: str, row: Mapping[str, Any], person_id: str) -> None:
        """Add a record (its feature row) to ``person_id``, new or existing; the next
        :meth:`link` finds it. A record already in the index is refused."""
        self.add_many([(unique_id, row, person_id)])

    def add_many(self, added: Sequence[tuple[str, Mapping[str, Any], str]]) -> None:
        """:meth:`add` of several records (unique id, feature row, person), in order: their
        blocking keys made as arrays (as :meth:`link_many` makes a batch's) and their traits
        read in one slice; the index is the one adding them one by one would give. A record
        already in the index, or twice in ``added``, is refused before anything is added."""
        if not added:
            return  # a batch that verified nothing new: no array calls
        uids = [uid for uid, _, _ in added]
        for uid, held in zip(uids, self.rows_of(uids), strict=True):
            if held is not None:
                raise ValueError(f"record {uid} is already in the index")
        if len(set(uids)) < len(uids):
            raise ValueError("a record is given twice")
        first = len(self)
        stored_rows = []
        for number, (uid, row, _) in enumerate(added, start=first):
            stored = {**{c: row.get(c) for c in FEATURE_SCHEMA.names}, "unique_id": uid}
            self._added_rows.append(stored)
            self._added_uids[uid] = number
            if self.features.append(stored) != number:
                raise AssertionError("the feature columns and the index disagree on row numbers")
            stored_rows.append(stored)
        stop = first + len(added)
        if stop > len(self._codes):
            more = np.zeros(stop // 4 + 1024, dtype=self._codes.dtype)
            self._codes = np.concatenate([self._codes, more])
        codes = [self._person_code(person) for _, _, person in added]
        self._codes[first:stop] = codes
        self._group.add_many(first, codes)
        hashes = _Hashed(stored_rows)
        for probe, block in zip(self.probes, self._blocks, strict=True):
            who, keys = keys_of([hashes[c] for c in probe.indexed])
            for i, key in zip(who.tolist(), keys.tolist(), strict=True):
                block.added.setdefault(key, []).append(first + i)
        for column in TF_COLUMNS:
            frequencies = self.tf[column]
            for stored in stored_rows:
                frequencies.add(stored.get(column))
        for number, stored in enumerate(stored_rows, start=first):
            self._index_document(stored, number)

    def _person_code(self, person_id: str) -> int:
        code = self._code_of.get(person_id)
        if code is None:
            code = self._code_of[person_id] = len(self._persons)
            self._persons.append(person_id)
            self._taken.add(person_id)
        return code


def _person_codes(
    uids: list[str], person_of: Mapping[str, str]
) -> tuple[npt.NDArray[np.int32], list[str]]:
    """Each record's person as a small integer, and the person ids by integer."""
    missing = sum(1 for u in uids if u not in person_of)
    if missing:
        raise ValueError(f"{missing} records have no person in person_of")
    code_of: dict[str, int] = {}
    codes = np.fromiter(
        (code_of.setdefault(person_of[u], len(code_of)) for u in uids), np.int32, len(uids)
    )
    return codes, list(code_of)


def _uid_index(column: pa.ChunkedArray) -> tuple[SortedKeys, Rows]:
    """Sorted record-id hashes and their row numbers, to find a record by id."""
    keys = column_hashes(column, unique=True)
    order = np.argsort(keys, kind="stable")
    return SortedKeys(keys[order]), order.astype(np.int64)


def _explain(
    reason: str, ranked: Ranking, skipped: list[str], timer: _Timer, pruned: int = 0
) -> dict[str, Any]:
    """``pruned``: candidates left unscored (:meth:`LinkIndex.prune`), counted in
    ``candidates`` but not among the persons considered."""
    top = ranked.top
    if top:
        reason += held_back(c.comparison for c in top.score.contributions)
    return {
        "reason": reason,
        "partner_record_id": top.record_id if top else None,
        "contributions": [c.to_json() for c in top.score.contributions] if top else [],
        "candidates": ranked.pairs + pruned,
        "pruned": pruned,
        "persons_considered": len(ranked),
        "persons": [
            {
                "person_id": c.person_id,
                "record": c.record_id,
                "match_weight": round(c.score.match_weight, 4),
            }
            for c in ranked.leaders[:EXPLAINED_PERSONS]
        ],
        "blocks_skipped": skipped,
        "timing_ms": timer.total(),
    }
