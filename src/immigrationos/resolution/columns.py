"""The person index's compared features as one NumPy matrix, to score one record against
all its candidates at once.

Scoring pair by pair in Python costs tens of microseconds a pair (eleven comparisons, each
walking its levels); a departure against a million persons meets dozens of candidates. Here
each index row is one row of a ``uint64`` matrix holding every compared column
(:func:`~immigrationos.resolution.comparisons.compared_columns`): a value as its 64-bit hash
(:func:`value_hash`, the blocking keys' hash; 0 stands for missing), a list as the number of
its distinct value (0 for empty; the sets are kept beside), integers and flags as they are,
and the columns compared as text (edit distance, Jaro-Winkler, term frequency) also as codes
into their distinct values. One row per record, so gathering a record's candidates
(:class:`Candidates`) is one array read of a few cache lines each, not one per column; then
:meth:`~immigrationos.resolution.model.Parameters.score_many` evaluates each comparison level
on all of them with a few array operations
(:meth:`~immigrationos.resolution.comparisons.Expr.many`).

A 64-bit hash stands for a value: two different values sharing one (about one chance in
10^7 over all the index's distinct values) would be taken as equal. Records added after the
build are appended in place; the matrix grows by a quarter when full.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from immigrationos.resolution.comparisons import TokenLists, compared_columns, text_columns

Hashes = npt.NDArray[np.uint64]
Rows = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

_GROWTH = 1.25
_SEPARATOR = "\x1f"


def unique_hash(value: Any) -> int:
    """A stable 64-bit hash of one key value (the same in every process and for every column,
    so that a rule comparing two different columns finds equal values), not cached: for
    values that seldom repeat (identifiers, record ids), which in :func:`value_hash`'s cache
    would only push out the names and dates that do (a full cache's miss costs about three
    times the hash)."""
    digest = hashlib.blake2b(str(value).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


#: :func:`unique_hash`, cached: names and dates repeat.
value_hash = lru_cache(maxsize=1 << 20)(unique_hash)


#: Columns whose values seldom repeat: hashed without :func:`value_hash`'s cache.
IDENTIFIER_COLUMNS = frozenset(
    {"unique_id", "a_number", "passport_no", "fin", "itin", "national_id"}
)


def column_hashes(column: pa.ChunkedArray | pa.Array, unique: bool = False) -> Hashes:
    """Per row, the hash of its value, 0 where it has none (distinct values hashed once;
    ``unique``: values that seldom repeat, see :func:`unique_hash`)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = pc.dictionary_encode(column)
    assert isinstance(encoded, pa.DictionaryArray)
    key = unique_hash if unique else value_hash
    distinct = np.array([key(v) for v in encoded.dictionary.to_pylist()], dtype=np.uint64)
    distinct = np.append(distinct, np.uint64(0))
    codes = encoded.indices.fill_null(len(distinct) - 1).to_numpy(zero_copy_only=False)
    return distinct[codes]


def _list_sets(column: pa.ChunkedArray) -> tuple[Hashes, list[frozenset[str]]]:
    """A list column as each row's number of its distinct list (0: empty or missing), and
    the lists as sets by number."""
    joined = pc.binary_join(column.combine_chunks(), _SEPARATOR)
    encoded = pc.dictionary_encode(pc.fill_null(joined, ""))
    assert isinstance(encoded, pa.DictionaryArray)
    lists = encoded.dictionary.to_pylist()
    sets = [frozenset(text.split(_SEPARATOR)) if text else frozenset() for text in lists]
    numbers = encoded.indices.to_numpy(zero_copy_only=False).astype(np.uint64) + 1
    empty = [i + 1 for i, found in enumerate(sets) if not found]
    numbers[np.isin(numbers, empty)] = 0
    return numbers, [frozenset(), *sets]


class FeatureColumns:
    """Every compared feature column of the index, one matrix row per index row."""

    def __init__(self, table: pa.Table) -> None:
        self.size = table.num_rows
        self.slot: dict[str, int] = {}
        """Column → its place in a matrix row (``int:``, ``flag:``, ``text:`` for the
        integer, boolean and text forms beside the hash)."""
        self.sets: dict[str, list[frozenset[str]]] = {}
        self.values: dict[str, list[str]] = {}
        self._token_lists: dict[str, TokenLists] = {}
        parts: list[Hashes] = []
        for name in compared_columns():
            kind = table.schema.field(name).type
            column = table.column(name)
            if pa.types.is_list(kind):
                numbers, self.sets[name] = _list_sets(column)
                self._put(parts, name, numbers)
                continue
            self._put(parts, name, column_hashes(column, unique=name in IDENTIFIER_COLUMNS))
            if pa.types.is_integer(kind):
                ints = column.fill_null(0).to_numpy().astype(np.int64)
                self._put(parts, f"int:{name}", ints.view(np.uint64))
            elif pa.types.is_boolean(kind):
                flags = column.fill_null(False).to_numpy(zero_copy_only=False)
                self._put(parts, f"flag:{name}", flags.astype(np.uint64))
        for name in text_columns():
            encoded = pc.dictionary_encode(table.column(name).combine_chunks())
            assert isinstance(encoded, pa.DictionaryArray)
            codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
            # Code 0 is "" (missing); the values follow.
            self.values[name] = ["", *encoded.dictionary.to_pylist()]
            self._put(parts, f"text:{name}", (codes.astype(np.int64) + 1).astype(np.uint64))
        # Room for records added later (departures verified, incremental links).
        self.matrix = np.zeros((self.size + self.size // 8 + 1024, len(parts)), np.uint64)
        for i, part in enumerate(parts):
            self.matrix[: self.size, i] = part
        self._plan = [(name, self._kind(name)) for name in compared_columns()]
        self._writes = [(i, *name.rpartition(":")[::2]) for name, i in self.slot.items()]

    def token_lists(self, name: str) -> TokenLists:
        """A list column's distinct lists as token arrays (made on first use)."""
        found = self._token_lists.get(name)
        if found is None:
            found = self._token_lists[name] = TokenLists(self.sets[name])
        return found

    def _kind(self, name: str) -> str:
        if name in self.sets:
            return "list"
        if name in self.values:
            return "text"
        return next((k for k in ("int", "flag") if f"{k}:{name}" in self.slot), "hash")

    def stored(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A feature row in the form :meth:`rows` gives: what the matrix holds as a hash is
        hashed, the rest kept, so that comparing the two forms compares the values."""
        out = dict(row)
        for name, kind in self._plan:
            if kind == "hash" and out.get(name) is not None:
                out[name] = value_hash(out[name])
        return out

    def rows(self, rows: Rows) -> list[dict[str, Any]]:
        """The compared columns of ``rows`` as feature rows, hashed columns as hashes (see
        :meth:`stored`): a few rows cost less read this way and scored pair by pair than
        scored as arrays."""
        return [self._row(values) for values in self.matrix[rows].tolist()]

    def _row(self, values: list[int]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        slot = self.slot
        for name, kind in self._plan:
            held = values[slot[name]]
            if kind == "list":
                out[name] = self.sets[name][held] or ()
            elif kind == "text":
                code = values[slot[f"text:{name}"]]
                out[name] = self.values[name][code] if code else None
            elif not held:
                out[name] = None
            elif kind == "int":
                number = values[slot[f"int:{name}"]]
                out[name] = number - (1 << 64) if number >= 1 << 63 else number
            elif kind == "flag":
                out[name] = bool(values[slot[f"flag:{name}"]])
            else:
                out[name] = held
        return out

    def _put(self, parts: list[Hashes], name: str, values: Hashes) -> None:
        self.slot[name] = len(parts)
        parts.append(values)

    @property
    def nbytes(self) -> int:
        return int(self.matrix.nbytes)

    def column(self, name: str) -> Hashes:
        """One column's hashes over every row held."""
        return self.matrix[: self.size, self.slot[name]]

    def append(self, row: Mapping[str, Any]) -> int:
        """Add one feature row as the next row number, which is returned."""
        number = self.size
        if number >= len(self.matrix):
            grown = np.zeros((int(number * _GROWTH) + 1024, self.matrix.shape[1]), np.uint64)
            grown[:number] = self.matrix[:number]
            self.matrix = grown
        out = [0] * self.matrix.shape[1]
        for i, kind, column in self._writes:
            value = row.get(column)
            if value is not None and not (isinstance(value, (list, tuple)) and not value):
                out[i] = self._stored(kind, column, value)
        self.matrix[number] = out
        self.size += 1
        return number

    def _stored(self, kind: str, column: str, value: Any) -> int:
        """One value as the matrix holds it (not missing)."""
        if kind == "int":
            return int(np.int64(value).view(np.uint64))
        if kind == "flag":
            return int(bool(value))
        store: list[Any]
        if kind == "text":
            store, value = self.values[column], value
        elif column in self.sets:
            store, value = self.sets[column], frozenset(value)
        else:
            return value_hash(value)
        store.append(value)
        return len(store) - 1


class Candidates:
    """The rows ``rows`` of :class:`FeatureColumns`, as the right-hand sides of many pairs
    (:class:`~immigrationos.resolution.comparisons.Columns`), gathered in one read."""

    def __init__(self, columns: FeatureColumns, rows: Rows, first: str | None = None) -> None:
        """``first``: read only the columns from this one on (:meth:`FeatureColumns.slot`
        order; a bound on names reads a third less); reading one before it is a KeyError."""
        self.columns = columns
        start = columns.slot[first] if first else 0
        self.block = columns.matrix[rows, start:] if start else columns.matrix[rows]
        self.slot = (
            {c: s - start for c, s in columns.slot.items() if s >= start} if start else columns.slot
        )
        self._distinct_of: dict[int, tuple[list[int], npt.NDArray[np.intp] | None]] = {}

    def __len__(self) -> int:
        return len(self.block)

    def key(self, value: Any) -> int:
        return value_hash(value)

    def hashes(self, col: str) -> Hashes:
        return self.block[:, self.slot[col]]

    def flags(self, col: str) -> npt.NDArray[np.bool_]:
        return self.block[:, self.slot[f"flag:{col}"]] != 0

    def token_lists(self, col: str) -> TokenLists:
        return self.columns.token_lists(col)

    def text_codes(self, col: str) -> tuple[npt.NDArray[np.int64], list[str]]:
        codes = self.block[:, self.slot[f"text:{col}"]].astype(np.int64)
        return codes, self.columns.values[col]

    def where_set(self, col: str, test: Callable[[frozenset[str]], bool]) -> Bools:
        sets = self.columns.sets[col]
        numbers, inverse = self._distinct(self.slot[col])
        found = np.array([test(sets[n]) for n in numbers], dtype=np.bool_)
        return found if inverse is None else found[inverse]

    def scored_text(
        self, col: str, score: Callable[[list[str]], npt.NDArray[Any]]
    ) -> npt.NDArray[Any]:
        values = self.columns.values[col]
        codes, inverse = self._distinct(self.slot[f"text:{col}"])
        scored = score([values[c] for c in codes])
        return scored if inverse is None else scored[inverse]

    def _distinct(self, slot: int) -> tuple[list[int], npt.NDArray[np.intp] | None]:
        """A column's values to evaluate, and where each row's result is among them (None:
        one per row)."""
        found = self._distinct_of.get(slot)
        if found is None:
            values = self.block[:, slot]
            if len(values) < DISTINCT_FROM:
                found = values.tolist(), None
            else:
                unique, inverse = np.unique(values, return_inverse=True)
                found = unique.tolist(), inverse
            self._distinct_of[slot] = found
        return found


#: From this many rows, a value is evaluated once per distinct value: large candidate sets
#: are common names, so their rows repeat a few values (below it, finding the distinct
#: values costs more than it saves).
DISTINCT_FROM = 128
